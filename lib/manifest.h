/*
 * manifest.h - reads petmatte.json, the manifest embedded in a model archive (C11,
 * jansson). Schema: docs/manifest.md.
 */
#ifndef PETMATTE_MANIFEST_H
#define PETMATTE_MANIFEST_H

#include <stddef.h>

#include "petmatte.h"
#include "shim.h"

/* The InSPyReNet defaults used when an archive has no manifest: ImageNet mean/std,
 * size x size input, probability output, min-max normalised, bilinear
 * align_corners=True upsampling. */
void pm_manifest_defaults(pm_model_config *cfg, int size, const char *name);

/* Parses json (len bytes, need not be NUL-terminated) over the defaults.
 * Errors: PM_ERR_MODEL with the offending field named. */
pm_code pm_manifest_parse(const char *json, size_t len, pm_model_config *cfg, char *err,
                          size_t errcap);

#endif
