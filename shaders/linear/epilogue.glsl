// The forward GEMMs' epilogue: an activation fused in by the scheduler (plan.py `_fusions`),
// computed as the activation's own shader does (relu/forward.comp), so fusing changes no bits.
// The includer declares constant_ids 0-3.
layout(constant_id = 4) const bool RELU = false;   // store max(y, 0)

float activate(const float v) { return RELU ? max(v, 0.0) : v; }
