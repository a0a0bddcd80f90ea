// Counter-based random bits for dropout: a pure function of (seed, step, element index), so the
// backward pass recomputes the forward mask instead of storing it, and a step's mask does not
// depend on the device, the workgroup size or the order in which invocations run.
//
// The mixer is Chris Wellons' "lowbias32" integer hash, a bijection on 32-bit words with very low
// avalanche bias. The 64-bit seed is folded into a 32-bit key, the key and the step into a stream,
// and the stream and the element index into the bits. For a fixed (seed, step), distinct indices
// get distinct bits (index -> bits is a bijection). tests/test_dropout.py re-implements this in
// NumPy; change both together.

uint dropout_mix(uint x) {
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

// The stream of one (seed, step): what every element's bits of that step start from.
uint dropout_stream(uint seed_lo, uint seed_hi, uint step) {
    const uint key = dropout_mix(seed_lo ^ dropout_mix(seed_hi + 0x9e3779b9u));
    return dropout_mix(key ^ dropout_mix(step + 0x632be5abu));
}

uint dropout_bits(uint stream, uint index) {
    return dropout_mix(stream ^ dropout_mix(index));
}
