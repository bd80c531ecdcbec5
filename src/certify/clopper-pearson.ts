// Exact binomial inference for randomized smoothing: the regularised incomplete beta
// function, its inverse, Clopper-Pearson confidence bounds and the two-sided binomial test
// at p = 1/2. Written here rather than taken from npm (@stdlib/stats-base-dists-beta-quantile
// 0.2.3 would do, through stdlib's betaincinv and its chain of math-base packages) because
// it is ~250 lines of well-known numerics (Lentz's continued fraction, Stirling's series,
// bisection) and owning them lets a bound be rounded in the safe direction; the tests check
// it against mpmath at 50 digits, closed forms and the binomial-sum identity.
//
// Accuracy: worst 7e-14 relative on the bounds for n up to 1e6 against mpmath (tests: 1e-11).
// A lower bound is the lower end of the last bisection bracket and an upper bound its upper
// end, so rounding in the search itself never tightens a bound; what remains is the ~1e-13
// error of the incomplete beta, far below the Monte-Carlo resolution of 1/n.

/** ln(2 pi) / 2. */
const HALF_LOG_2PI = 0.9189385332046727;
/** Where Stirling's series takes over from the shifted argument (its error is below 1e-17 there). */
const STIRLING_FROM = 10;

/**
 * The remainder of Stirling's series, ln Gamma(z) - ((z - 1/2) ln z - z + ln(2 pi)/2), for
 * z >= 10 (Bernoulli-number terms up to z^-13; the next is below 3e-17 at z = 10). Kept apart
 * so that ln B(a, b) can cancel the large terms analytically (see logPowerTerms).
 */
function stirlingRemainder(z: number): number {
  const r = 1 / z;
  const r2 = r * r;
  return (
    r * (1 / 12 + r2 * (-1 / 360 + r2 * (1 / 1260 + r2 * (-1 / 1680 + r2 * (1 / 1188 + r2 * (-691 / 360360 + r2 * (1 / 156)))))))
  );
}

/** ln Gamma(x) for x > 0: Stirling's series, after shifting small arguments up with Gamma(x+1) = x Gamma(x). */
export function logGamma(x: number): number {
  if (!(x > 0)) throw new RangeError(`logGamma: x must be > 0, got ${x}`);
  if (x === Number.POSITIVE_INFINITY) return x;
  let shift = 0;
  let product = 1;
  while (x < STIRLING_FROM) {
    product *= x;
    x += 1;
    shift += 1;
  }
  const stirling = (x - 0.5) * Math.log(x) - x + HALF_LOG_2PI + stirlingRemainder(x);
  return shift === 0 ? stirling : stirling - Math.log(product);
}

/** ln B(a, b) = ln Gamma(a) + ln Gamma(b) - ln Gamma(a + b). */
export function logBeta(a: number, b: number): number {
  return logGamma(a) + logGamma(b) - logGamma(a + b);
}

/**
 * ln(x^a y^b / B(a, b)) with y = 1 - x, the prefactor of the continued fraction. Written
 * naively, ln B(a, b) is a difference of log-gammas of ~1e6 each when a or b is ~1e5, and the
 * result keeps ~10 digits; so the leading Stirling terms are cancelled analytically:
 * - a, b >= 10 (Temme's form, as in Boost's ibeta_power_terms):
 *     a ln(x (a + b) / a) + b ln(y (a + b) / b) + ln(ab / (a + b)) / 2 - ln(2 pi) / 2
 *     - rem(a) - rem(b) + rem(a + b),
 *   where x (a + b) / a = 1 + d / a and y (a + b) / b = 1 - d / b with d = x b - y a: log1p
 *   keeps the digits near the mean, the plain log far from it (where 1 + d / a may round to 0);
 * - a < 10 <= b: ln Gamma(b) - ln Gamma(a + b) = -(b - 1/2) log1p(a / b) - a ln(a + b) + a
 *   + rem(b) - rem(a + b), and symmetrically for b < 10 <= a;
 * - both below 10: nothing large cancels.
 * ln x and ln y come from whichever of x and y is exact (the caller's x, or y = 1 - x, which is
 * exact for x >= 1/2), so that b ln y with b = 1e5 does not multiply the rounding of 1 - x.
 */
function logPowerTerms(x: number, y: number, a: number, b: number): number {
  const lx = x < 0.5 ? Math.log(x) : Math.log1p(-y);
  const ly = x < 0.5 ? Math.log1p(-x) : Math.log(y);
  const bigA = a >= STIRLING_FROM;
  const bigB = b >= STIRLING_FROM;
  const s = a + b;
  if (bigA && bigB) {
    const d = x * b - y * a;
    const termA = Math.abs(d) < 0.5 * a ? a * Math.log1p(d / a) : a * (lx + Math.log1p(b / a));
    const termB = Math.abs(d) < 0.5 * b ? b * Math.log1p(-d / b) : b * (ly + Math.log1p(a / b));
    return (
      termA +
      termB +
      0.5 * Math.log((a * b) / s) -
      HALF_LOG_2PI -
      stirlingRemainder(a) -
      stirlingRemainder(b) +
      stirlingRemainder(s)
    );
  }
  if (bigB) {
    return (
      a * lx +
      b * ly -
      logGamma(a) +
      (b - 0.5) * Math.log1p(a / b) +
      a * Math.log(s) -
      a -
      stirlingRemainder(b) +
      stirlingRemainder(s)
    );
  }
  if (bigA) {
    return (
      a * lx +
      b * ly -
      logGamma(b) +
      (a - 0.5) * Math.log1p(b / a) +
      b * Math.log(s) -
      b -
      stirlingRemainder(a) +
      stirlingRemainder(s)
    );
  }
  return a * lx + b * ly - logBeta(a, b);
}

const TINY = 1e-300;
const CF_EPS = 1e-16;

/**
 * The continued fraction of I_x(a, b) (Numerical Recipes' betacf, evaluated with the modified
 * Lentz method). It converges quickly for x < (a + 1) / (a + b + 2), in O(sqrt(max(a, b)))
 * terms; the caller uses the symmetry I_x(a, b) = 1 - I_{1-x}(b, a) for larger x.
 * `first` is the leading denominator 1 - (a + b) x / (a + 1), passed in because it cancels
 * badly when x is a rounded 1 - x' close to 1 (see betaTails).
 */
function betaContinuedFraction(x: number, a: number, b: number, first: number): number {
  const qab = a + b;
  const qap = a + 1;
  const qam = a - 1;
  let c = 1;
  let d = first;
  if (Math.abs(d) < TINY) d = TINY;
  d = 1 / d;
  let h = d;
  // Generous: a + b = 1e8 needs ~1e4 terms; more means a bug, not slow convergence.
  const maxIterations = 1000 + 10 * Math.ceil(Math.sqrt(Math.max(a, b)));
  for (let m = 1; m <= maxIterations; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((qam + m2) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < TINY) d = TINY;
    c = 1 + aa / c;
    if (Math.abs(c) < TINY) c = TINY;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (qab + m) * x) / ((a + m2) * (qap + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < TINY) d = TINY;
    c = 1 + aa / c;
    if (Math.abs(c) < TINY) c = TINY;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < CF_EPS) return h;
  }
  throw new Error(`incomplete beta: continued fraction did not converge (x ${x}, a ${a}, b ${b})`);
}

/** Both tails of the beta(a, b) distribution at x: lower = I_x(a, b) and upper = 1 - I_x(a, b). */
export interface BetaTails {
  lower: number;
  upper: number;
}

function checkShapes(what: string, a: number, b: number): void {
  if (!(a > 0 && Number.isFinite(a) && b > 0 && Number.isFinite(b))) {
    throw new RangeError(`${what}: shape parameters must be finite and > 0, got a = ${a}, b = ${b}`);
  }
}

/**
 * I_x(a, b) and 1 - I_x(a, b), each to full relative precision: whichever tail the continued
 * fraction computes directly is the small one, so neither is obtained as 1 minus a number
 * close to 1 when it matters (tail probabilities of 1e-10 keep their digits).
 */
export function betaTails(x: number, a: number, b: number): BetaTails {
  checkShapes("betaTails", a, b);
  if (!(x >= 0 && x <= 1)) throw new RangeError(`betaTails: x must be in [0, 1], got ${x}`);
  if (x === 0) return { lower: 0, upper: 1 };
  if (x === 1) return { lower: 1, upper: 0 };
  const y = 1 - x;
  const front = Math.exp(logPowerTerms(x, y, a, b));
  if (x < (a + 1) / (a + b + 2)) {
    const lower = (front * betaContinuedFraction(x, a, b, 1 - ((a + b) * x) / (a + 1))) / a;
    return { lower, upper: 1 - lower };
  }
  // The fraction in y = 1 - x, whose leading denominator 1 - (a + b) y / (b + 1) is written
  // with the exact x as ((a + b) x - (a - 1)) / (b + 1): for x = 7.6e-5 the rounding of y
  // alone would otherwise cost 12 digits there.
  const upper = (front * betaContinuedFraction(y, b, a, ((a + b) * x - (a - 1)) / (b + 1))) / b;
  return { lower: 1 - upper, upper };
}

/** The regularised incomplete beta function I_x(a, b) (the beta(a, b) CDF at x). */
export function regularizedIncompleteBeta(x: number, a: number, b: number): number {
  return betaTails(x, a, b).lower;
}

/**
 * The bracket [lo, hi] around the x where the chosen tail of beta(a, b) equals target:
 * bisection to adjacent doubles. The lower tail increases with x and the upper tail
 * decreases, and bisection needs nothing else (Newton would save iterations, but each
 * evaluation is microseconds and this is called once per certified sample). Midpoints are
 * geometric while the bracket spans more than a factor 4, so roots near 1e-300 take ~60
 * steps rather than ~1000.
 */
function betaBracket(target: number, a: number, b: number, tail: "lower" | "upper"): [number, number] {
  let lo = 0;
  let hi = 1;
  for (let i = 0; i < 4000; i++) {
    let mid: number;
    if (lo === 0) mid = Math.min(hi / 2, hi * hi);
    else if (hi > 4 * lo) mid = Math.sqrt(lo * hi);
    else mid = lo + (hi - lo) / 2;
    if (!(mid > lo && mid < hi)) break;
    const t = betaTails(mid, a, b);
    // "below": the root lies above mid.
    const below = tail === "lower" ? t.lower < target : t.upper > target;
    if (below) lo = mid;
    else hi = mid;
  }
  return [lo, hi];
}

function checkProbability(what: string, p: number): void {
  if (!(p >= 0 && p <= 1)) throw new RangeError(`${what}: probability must be in [0, 1], got ${p}`);
}

/** The p-quantile of beta(a, b): the x with I_x(a, b) = p (scipy.stats.beta.ppf). */
export function betaQuantile(p: number, a: number, b: number): number {
  checkShapes("betaQuantile", a, b);
  checkProbability("betaQuantile", p);
  if (p === 0) return 0;
  if (p === 1) return 1;
  const [lo, hi] = betaBracket(p, a, b, "lower");
  return closer(lo, hi, (x) => Math.abs(betaTails(x, a, b).lower - p));
}

/**
 * The x whose upper tail 1 - I_x(a, b) is q (scipy.stats.beta.isf): for q near 0 this keeps
 * the digits that betaQuantile(1 - q) would lose in forming 1 - q.
 */
export function betaQuantileUpper(q: number, a: number, b: number): number {
  checkShapes("betaQuantileUpper", a, b);
  checkProbability("betaQuantileUpper", q);
  if (q === 0) return 1;
  if (q === 1) return 0;
  const [lo, hi] = betaBracket(q, a, b, "upper");
  return closer(lo, hi, (x) => Math.abs(betaTails(x, a, b).upper - q));
}

function closer(lo: number, hi: number, err: (x: number) => number): number {
  return err(lo) <= err(hi) ? lo : hi;
}

function checkCounts(what: string, k: number, n: number, alpha: number): void {
  if (!(Number.isSafeInteger(n) && n >= 1)) throw new RangeError(`${what}: n must be an integer >= 1, got ${n}`);
  if (!(Number.isSafeInteger(k) && k >= 0 && k <= n))
    throw new RangeError(`${what}: k must be an integer in [0, ${n}], got ${k}`);
  if (!(alpha > 0 && alpha < 1)) throw new RangeError(`${what}: alpha must be in (0, 1), got ${alpha}`);
}

/**
 * One-sided Clopper-Pearson lower bound at confidence 1 - alpha for the success probability
 * of a binomial with k successes in n trials: the p with P(Bin(n, p) >= k) = alpha, i.e. the
 * alpha-quantile of beta(k, n - k + 1); 0 when k = 0. This is Cohen et al.'s LowerConfBound
 * (statsmodels' proportion_confint(k, n, alpha=2 * alpha, method="beta")[0]). Rounded down.
 */
export function clopperPearsonLower(k: number, n: number, alpha: number): number {
  checkCounts("clopperPearsonLower", k, n, alpha);
  if (k === 0) return 0;
  return betaBracket(alpha, k, n - k + 1, "lower")[0];
}

/**
 * One-sided Clopper-Pearson upper bound at confidence 1 - alpha: the p with
 * P(Bin(n, p) <= k) = alpha, i.e. the (1 - alpha)-quantile of beta(k + 1, n - k); 1 when
 * k = n. Rounded up.
 */
export function clopperPearsonUpper(k: number, n: number, alpha: number): number {
  checkCounts("clopperPearsonUpper", k, n, alpha);
  if (k === n) return 1;
  return betaBracket(alpha, k + 1, n - k, "upper")[1];
}

/**
 * The two-sided Clopper-Pearson interval at confidence 1 - alpha (alpha / 2 in each tail),
 * statsmodels' proportion_confint(k, n, alpha, method="beta").
 */
export function clopperPearsonInterval(k: number, n: number, alpha: number): [number, number] {
  checkCounts("clopperPearsonInterval", k, n, alpha);
  return [clopperPearsonLower(k, n, alpha / 2), clopperPearsonUpper(k, n, alpha / 2)];
}

/** P(Bin(n, p) >= k) = I_p(k, n - k + 1) for 1 <= k <= n (1 for k <= 0, 0 for k > n). */
export function binomialUpperTail(k: number, n: number, p: number): number {
  if (!(Number.isSafeInteger(n) && n >= 0)) throw new RangeError(`binomialUpperTail: n must be an integer >= 0, got ${n}`);
  if (!Number.isSafeInteger(k)) throw new RangeError(`binomialUpperTail: k must be an integer, got ${k}`);
  checkProbability("binomialUpperTail", p);
  if (k <= 0) return 1;
  if (k > n) return 0;
  return betaTails(p, k, n - k + 1).lower;
}

/**
 * Two-sided p-value of the exact binomial test of H0: p = 1/2 for k successes in n trials
 * (scipy.stats.binomtest(k, n, 0.5).pvalue): by symmetry the probability of a count at least
 * as far from n / 2 as k, i.e. min(1, 2 P(Bin(n, 1/2) >= max(k, n - k))), and 1 at k = n / 2.
 * Cohen et al.'s PREDICT abstains unless this is at most alpha for the top two counts.
 */
export function binomialTestHalf(k: number, n: number): number {
  if (!(Number.isSafeInteger(n) && n >= 1)) throw new RangeError(`binomialTestHalf: n must be an integer >= 1, got ${n}`);
  if (!(Number.isSafeInteger(k) && k >= 0 && k <= n)) {
    throw new RangeError(`binomialTestHalf: k must be an integer in [0, ${n}], got ${k}`);
  }
  if (2 * k === n) return 1;
  return Math.min(1, 2 * binomialUpperTail(Math.max(k, n - k), n, 0.5));
}
