// A read-only input read as vec4 quads: VEC4_INPUT(binding, Block, name) declares it, LOAD4(name, i)
// reads its i-th quad, LOAD1(name, i) its i-th float (the quad holding it: for values that are no
// neighbours, e.g. weights gathered across channels).
//
// Compiled with -DTEXEL_READS=1 it is a uniform texel buffer read with texelFetch: llvmpipe
// (lavapipe) turns every storage-buffer load into a loop over the lanes with a branch per lane and
// component, while a texel fetch is one gather. Otherwise (GPUs, or a buffer longer than the
// device's maxTexelBufferElements quads) it is a readonly storage buffer of vec4.
// vkbackprop/shaders.py reads the declaration after the preprocessor; Device.read_defines picks the
// variant per dispatch.
#if defined(TEXEL_READS) && TEXEL_READS
#define VEC4_INPUT(binding_index, Block, name) layout(set = 0, binding = binding_index) uniform samplerBuffer name
#define LOAD4(name, i) texelFetch(name, int(i))
#else
#define VEC4_INPUT(binding_index, Block, name) \
    layout(set = 0, binding = binding_index) readonly buffer Block { vec4 name[]; }
#define LOAD4(name, i) name[i]
#endif
#define LOAD1(name, i) LOAD4(name, (i) / 4)[(i) % 4]
