// Sum of one float per invocation across a workgroup of REDUCE_SIZE (a power of two) invocations,
// as a fixed binary tree in shared memory: the same inputs always give the same bits.
// No subgroup operations, so it is independent of the device's subgroup size.
shared float reduce_scratch[REDUCE_SIZE];

float workgroup_sum(float value) {
    const uint t = gl_LocalInvocationIndex;
    reduce_scratch[t] = value;
    barrier();
    for (uint stride = REDUCE_SIZE / 2; stride > 0; stride >>= 1) {
        if (t < stride) reduce_scratch[t] += reduce_scratch[t + stride];
        barrier();
    }
    return reduce_scratch[0];
}
