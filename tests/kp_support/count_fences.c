/* LD_PRELOAD shim counting vkCreateFence / vkDestroyFence / vkResetFences calls made through the
 * Vulkan loader's exported symbols (kp links libvulkan.so.1 and calls these directly).
 *
 * count_fences_get(long out[3]) returns {creates, destroys, resets} so far (read from Python via
 * ctypes.CDLL(None)); at exit the totals are also written to $COUNT_FENCES_OUT, or stderr. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <vulkan/vulkan.h>

static long n_create, n_destroy, n_reset;

/* The real function: RTLD_NEXT finds it when libvulkan is in the global scope; when it was loaded
 * only as a dependency of an extension module dlopen()ed with RTLD_LOCAL (Python's default), it is not,
 * so fall back to the loader library itself (dlopen returns the copy already loaded). */
static void *real(const char *name)
{
    void *f = dlsym(RTLD_NEXT, name);
    if (!f) {
        void *lib = dlopen("libvulkan.so.1", RTLD_NOW | RTLD_LOCAL);
        f = lib ? dlsym(lib, name) : NULL;
    }
    if (!f) {
        fprintf(stderr, "count_fences: cannot find the real %s\n", name);
        abort();
    }
    return f;
}

#define NEXT(name)                                              \
    static PFN_##name next_##name;                              \
    if (!next_##name)                                           \
        next_##name = (PFN_##name)real(#name);

VKAPI_ATTR VkResult VKAPI_CALL vkCreateFence(VkDevice device, const VkFenceCreateInfo *info,
                                             const VkAllocationCallbacks *alloc, VkFence *fence)
{
    NEXT(vkCreateFence);
    __atomic_add_fetch(&n_create, 1, __ATOMIC_SEQ_CST);
    return next_vkCreateFence(device, info, alloc, fence);
}

VKAPI_ATTR void VKAPI_CALL vkDestroyFence(VkDevice device, VkFence fence,
                                          const VkAllocationCallbacks *alloc)
{
    NEXT(vkDestroyFence);
    if (fence != VK_NULL_HANDLE)  /* destroying VK_NULL_HANDLE is a no-op, not a fence */
        __atomic_add_fetch(&n_destroy, 1, __ATOMIC_SEQ_CST);
    next_vkDestroyFence(device, fence, alloc);
}

VKAPI_ATTR VkResult VKAPI_CALL vkResetFences(VkDevice device, uint32_t count, const VkFence *fences)
{
    NEXT(vkResetFences);
    __atomic_add_fetch(&n_reset, (long)count, __ATOMIC_SEQ_CST);
    return next_vkResetFences(device, count, fences);
}

void count_fences_get(long out[3])
{
    out[0] = __atomic_load_n(&n_create, __ATOMIC_SEQ_CST);
    out[1] = __atomic_load_n(&n_destroy, __ATOMIC_SEQ_CST);
    out[2] = __atomic_load_n(&n_reset, __ATOMIC_SEQ_CST);
}

__attribute__((destructor)) static void count_fences_report(void)
{
    const char *path = getenv("COUNT_FENCES_OUT");
    FILE *f = path && *path ? fopen(path, "w") : NULL;
    fprintf(f ? f : stderr, "vkCreateFence=%ld vkDestroyFence=%ld vkResetFences=%ld\n",
            n_create, n_destroy, n_reset);
    if (f)
        fclose(f);
}
