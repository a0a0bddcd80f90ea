// Float32-accurate special functions for the activation shaders: exp (our own, so the accuracy does
// not depend on the driver), erf, erfc, the standard normal CDF/PDF, and overflow-free sigmoid/tanh.
//
// Why our own exp: the Vulkan precision rules allow exp an error of 3 + 2|x| ulp, and lavapipe's
// exp measured up to 17 ulp on [-20, -5] and 64 ulp near -87. The exp below is within 1.3 ulp.
// Its domain is a <= ~0.35 (every caller needs exp of a non-positive number); results below
// FLT_MIN (a < ln(FLT_MIN) = -87.34) are flushed to +0, like a flush-to-zero device would.
//
// Coefficients: fitted by us in float64 (Lawson's iteratively reweighted least squares, which
// converges to the minimax fit in relative error) and rounded to float32:
//   exp(r) - 1 - r  ~  r^2 * E(r),            |r| <= 0.36,        fit error 4.0e-9
//   erf(x)          ~  x * P(x^2),            |x| <= 1,           fit error 1.2e-9
//   tanh(x)         ~  x * T(x^2),            |x| <= 0.55,        fit error 9.4e-10
//   (1 + 2a) exp(a^2) erfc(a)  ~  Q(t),  t = (a - 3) / (a + 3),  0.5 <= a <= 10,  fit error 4.1e-10
// The last form (a bounded, smooth function of a Moebius-mapped argument) is the idea of Shepherd &
// Laframboise, "Chebyshev approximation of (1+2x)exp(x^2)erfc x in 0 <= x < infinity" (Math. Comp.
// 1981); the degree, the centre 3 and the coefficients here are our own fit. Beyond a = 10, erfc(a)
// is below FLT_MIN, so Q is only ever evaluated on [0.5, 10].
//
// exp(-x^2) is evaluated with x^2 split exactly into hi + lo (x rounded to 12 significant bits, whose
// square is exact), so erfc and the normal CDF/PDF keep their relative accuracy in the far tail,
// where exp(-fl(x^2)) would otherwise lose x^2 * 2^-24 relative.
//
// Measured on lavapipe against math.erf/math.erfc at every float32 input (|x| in [2^-6, 4) for erf,
// [2^-6, 9.2) for erfc) plus 2e6 log-spaced tiny ones: erf within 1.32 ulp (9.3e-8 relative), erfc
// within 4.65 ulp (3.4e-7 relative, down to FLT_MIN). tests/test_activations.py re-checks all of these
// functions on dense grids.
//
// `precise` keeps the compiler from fusing or reassociating the few operations that rely on exact
// float32 rounding (the range reduction of exp and the split of x^2).

const float VKB_LN2_HI = 0.693145751953125;       // 15 significant bits: n * VKB_LN2_HI is exact for |n| < 512
const float VKB_LN2_LO = 1.4286067653302226e-06;  // ln 2 - VKB_LN2_HI
const float VKB_LOG2E = 1.4426950408889634;
const float VKB_LN_FLT_MIN = -87.33654475;
const float VKB_SQRT1_2 = 0.7071067811865476;
const float VKB_INV_SQRT_2PI = 0.3989422804014327;

// exp(hi + lo) for hi + lo <= ~0.35, where |lo| is small next to 1 (lo carries low-order bits of hi).
float vkb_exp_hilo(float hi, float lo) {
    const float a = hi + lo;
    if (!(a >= VKB_LN_FLT_MIN)) return a != a ? a : 0.0;   // NaN stays NaN; underflow flushes to +0
    const float n = roundEven(a * VKB_LOG2E);              // a = n ln2 + r, |r| <= ln2 / 2 (+ tiny)
    precise float r = (hi - n * VKB_LN2_HI) - n * VKB_LN2_LO;
    r = r + lo;
    const float e = r * r * (0.49999991059303284 + r * (0.1666649729013443 + r * (0.041668668389320374
                    + r * (0.008371495641767979 + r * 0.001380884787067771))));
    return ldexp(1.0 + (r + e), int(n));
}

float vkb_exp(float a) {
    return vkb_exp_hilo(a, 0.0);
}

// exp(-s * x * x) for s a power of two (1 or 0.5), with x * x split exactly.
float vkb_exp_neg_sq(float x, float s) {
    const float xh = uintBitsToFloat(floatBitsToUint(x) & 0xFFFFF000u);  // 12 significant bits
    precise float hi = -(xh * xh) * s;                                    // exact
    if (!(hi >= VKB_LN_FLT_MIN - 1.0)) return x != x ? x : 0.0;          // also |x| = inf: no inf - inf below
    precise float lo = -((x - xh) * (x + xh)) * s;                        // x - xh exact; the rest tiny
    return vkb_exp_hilo(hi, lo);
}

// erf(x) for |x| <= 1 (keeps the sign of x, -0 included), as x + x * (P(x^2) - 1): the rounding
// error of the polynomial then lands on a term ~8x smaller than the result.
float vkb_erf_small(float x) {
    const float u = x * x;
    return x + x * (0.12837916709551257 + u * (-0.3761262595653534 + u * (0.1128358542919159
               + u * (-0.026853812858462334 + u * (0.005188329145312309 + u * (-0.000801020534709096
               + u * 7.853896386222914e-05))))));
}

// erfc(a) for a >= 0.5 given e = exp(-a^2) (computed by the caller, as exactly as it can).
float vkb_erfc_tail(float a, float e) {
    const float b = min(a, 10.0);   // e is 0 beyond 9.4 anyway; keeps t finite for a = inf
    const float t = (b - 3.0) / (b + 3.0);
    const float q = 1.2530080080032349 + t * (-0.1356211006641388 + t * (-0.047562375664711
                    + t * (0.12964504957199097 + t * (-0.11927161365747452 + t * (0.06831029057502747
                    + t * (-0.023788748309016228 + t * (0.0025088575202971697 + t * (0.001955242594704032
                    + t * (-0.0006970507092773914 + t * -0.00018944129988085479)))))))));
    return e * (q / (1.0 + 2.0 * b));
}

float vkb_erfc(float x) {
    const float a = abs(x);
    if (a < 0.5) return 1.0 - vkb_erf_small(x);
    const float c = vkb_erfc_tail(a, vkb_exp_neg_sq(a, 1.0));
    return x < 0.0 ? 2.0 - c : c;
}

float vkb_erf(float x) {
    const float a = abs(x);
    if (a <= 1.0) return vkb_erf_small(x);
    const float c = vkb_erfc_tail(a, vkb_exp_neg_sq(a, 1.0));
    return x < 0.0 ? c - 1.0 : 1.0 - c;
}

// Standard normal PDF exp(-x^2 / 2) / sqrt(2 pi).
float vkb_normal_pdf(float x) {
    return VKB_INV_SQRT_2PI * vkb_exp_neg_sq(x, 0.5);
}

// Standard normal CDF 0.5 * erfc(-x / sqrt 2), accurate relative to itself in both tails: the
// exp(-x^2 / 2) factor is computed from x itself, not from the rounded x / sqrt 2.
float vkb_normal_cdf(float x) {
    const float z = x * VKB_SQRT1_2;
    const float a = abs(z);
    if (a < 0.5) return 0.5 + 0.5 * vkb_erf_small(z);
    const float c = 0.5 * vkb_erfc_tail(a, vkb_exp_neg_sq(x, 0.5));
    return x < 0.0 ? c : 1.0 - c;
}

// 1 / (1 + exp(-x)) from e = exp(-|x|) <= 1: never overflows; exactly 0 / 1 far out.
float vkb_sigmoid(float x) {
    const float e = vkb_exp(-abs(x));
    return (x >= 0.0 ? 1.0 : e) / (1.0 + e);
}

// sigmoid(x) * (1 - sigmoid(x)) = e / (1 + e)^2 with e = exp(-|x|), without cancellation.
float vkb_sigmoid_slope(float x) {
    const float e = vkb_exp(-abs(x));
    const float d = 1.0 + e;
    return e / (d * d);
}

// tanh from exp(-2|x|) <= 1 (never inf / inf), and a polynomial near 0 where 1 - e would cancel.
// Keeps the sign of x, -0 included; saturates to exactly +-1 for |x| >= 9.01.
float vkb_tanh(float x) {
    const float a = abs(x);
    if (a < 0.55) {
        const float u = x * x;
        return x * (1.0 + u * (-0.3333331048488617 + u * (0.13332460820674896 + u * (-0.05384271219372749
                   + u * (0.021039694547653198 + u * -0.006235582288354635)))));
    }
    const float e = vkb_exp(-2.0 * a);
    const float t = 1.0 - 2.0 * e / (1.0 + e);
    return x < 0.0 ? -t : t;
}
