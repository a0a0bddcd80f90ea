// What GELU's forward and backward share: the form and the tanh form's constants.

layout(constant_id = 1) const bool TANH_APPROXIMATION = false;

const float SQRT_2_OVER_PI = 0.7978845608028654;
const float KAPPA = 0.044715;
