/* Compiled, not run: the public header must be clean C99 and C++. */
#include "petmatte.h"

int main(void) {
    pm_params p;
    pm_params_init(&p);
    return (int)p.struct_size == 0;
}
