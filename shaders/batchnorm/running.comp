#version 450
// Training mode's update of the running statistics, as torch.nn.BatchNorm:
//   running_mean = (1 - f) * running_mean + f * mean
//   running_var  = (1 - f) * running_var  + f * variance * VALUES / (VALUES - 1)   (unbiased)
//   num_batches_tracked += 1
// with f = MOMENTUM, or 1 / num_batches_tracked (after the increment) when CUMULATIVE (momentum=None).
// One workgroup; each invocation updates a strided slice of the channels.

layout(constant_id = 0) const uint CHANNELS = 1;
layout(constant_id = 1) const uint VALUES = 2;
layout(constant_id = 2) const float MOMENTUM = 0.1;
layout(constant_id = 3) const bool CUMULATIVE = false;

layout(set = 0, binding = 0) readonly buffer Mean { float mean[]; };
layout(set = 0, binding = 1) readonly buffer Variance { float variance[]; };
layout(set = 0, binding = 2) buffer RunningMean { float running_mean[]; };
layout(set = 0, binding = 3) buffer RunningVar { float running_var[]; };
layout(set = 0, binding = 4) buffer NumBatchesTracked { uint num_batches_tracked[]; };

#define WORKGROUP_SIZE 64
layout(local_size_x = WORKGROUP_SIZE) in;

void main() {
    const uint t = gl_LocalInvocationIndex;
    const uint count = num_batches_tracked[0] + 1;
    const float f = CUMULATIVE ? 1.0 / float(count) : MOMENTUM;
    const float unbiased = float(VALUES) / float(VALUES - 1);
    for (uint c = t; c < CHANNELS; c += WORKGROUP_SIZE) {
        running_mean[c] = (1.0 - f) * running_mean[c] + f * mean[c];
        running_var[c] = (1.0 - f) * running_var[c] + f * (variance[c] * unbiased);
    }
    barrier();   // every invocation has read the count before invocation 0 overwrites it
    if (t == 0) num_batches_tracked[0] = count;
}
