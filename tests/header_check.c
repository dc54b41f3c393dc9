/* Compiled, not run: the public header must be clean C99 and C++, and every struct a
 * caller fills must end at its last field (no tail padding), so that struct_size
 * names exactly the fields a caller's binary has. A failed check is a negative array
 * size: C99 has no static assertion. */
#include <stddef.h>

#include "petmatte.h"

#define PM_ENDS_AT(type, last)                                                      \
    typedef char type##_ends_at_##last                                              \
        [sizeof(type) == offsetof(type, last) + sizeof(((type *)0)->last) ? 1 : -1]

PM_ENDS_AT(pm_params, max_batch);
PM_ENDS_AT(pm_status_info, device_memory_peak_bytes);
PM_ENDS_AT(pm_image, stride);
PM_ENDS_AT(pm_remove_options, overlay_opacity);

int main(void) {
    pm_params p;
    pm_params_init(&p);
    pm_status_info s;
    pm_status_info_init(&s);
    pm_image i;
    pm_image_init(&i);
    pm_remove_options o;
    pm_remove_options_init(&o);
    pm_tune key = PM_TUNE_FORWARD_STREAMS;
    return (int)p.struct_size == 0 || s.struct_size == 0 || i.struct_size == 0 || o.struct_size == 0 ||
           pm_tune_name(key) == NULL;
}
