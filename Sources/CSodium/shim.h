#ifndef FSPF_CSODIUM_SHIM_H
#define FSPF_CSODIUM_SHIM_H
// Randomness, guarded/locked/zeroed memory and constant-time comparison.
#include <sodium.h>
#endif
