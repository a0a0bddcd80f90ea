// Batch norm's view of (batch, CHANNELS, SPATIAL) activations, SPATIAL the product of the dims after
// the channel (1 for BatchNorm1d on (C,) samples). Needs the spec constants CHANNELS and SPATIAL.

// Flat index of the k-th of a channel's batch * SPATIAL values, in (sample, position) order.
uint channel_value(uint c, uint k) {
    return ((k / SPATIAL) * CHANNELS + c) * SPATIAL + k % SPATIAL;
}

// The channel of flat element i.
uint channel_of(uint i) {
    return (i / SPATIAL) % CHANNELS;
}

// The channel a per-channel workgroup reduces (workgroup counts above 65,535 fold into y).
uint workgroup_channel() {
    return gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
}
