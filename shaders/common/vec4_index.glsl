// Elementwise work on quads of 4 consecutive floats. On lavapipe every storage-buffer load or store
// instruction loops over the subgroup's lanes, so one vec4 access costs about what one float does.
// Each buffer is bound twice, the same buffer under two names (vkbackprop.layers.activation.elementwise
// does this): `name4`, a vec4[] view for the whole quads, and `name`, a float[] view for the 0-3 tail
// elements after them. The vec4 views are never indexed past QUADS - 1, so nothing past a buffer's
// end is touched.
// Each invocation loops over quads with the grid's size as stride, so any grid is correct; the host
// sizes it for several quads per invocation, which spreads the per-invocation work (the index, the
// scalar loads of hyper-parameters, hoisted before the loop) over more elements. The loop ends with
// q == QUADS in exactly one invocation, whose next quad would be the partial one: it does the tail.
// Declare the spec constant NUMEL (the element count) before including this.
#include "index.glsl"

const uint QUADS = NUMEL / 4;   // whole quads; the tail is elements 4 * QUADS .. NUMEL - 1

// A float -> float function applied to each element of a quad.
#define MAP4(f, v) vec4(f((v).x), f((v).y), f((v).z), f((v).w))

// Invocations in the grid (1-D, folded into x and y like flat_index): the stride of the quad loop.
uint grid_invocations() {
    return gl_NumWorkGroups.x * gl_NumWorkGroups.y * gl_WorkGroupSize.x;
}
