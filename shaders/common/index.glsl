// Flat invocation index for 1-D work whose workgroup count was folded into x and y
// (Device.grid_1d): counts above 65,535 do not fit in x alone on every device.
uint flat_index() {
    return gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
}
