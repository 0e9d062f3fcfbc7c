#ifndef FSPF_CLINUX_SHIM_H
#define FSPF_CLINUX_SHIM_H
// Linux interfaces that Swift's Glibc module does not import: extended attributes, and the
// lseek whences that glibc only defines under _GNU_SOURCE.
#include <sys/types.h>
#include <sys/xattr.h>

static const int FSPF_SEEK_DATA = 3;  // SEEK_DATA, linux/fs.h
static const int FSPF_SEEK_HOLE = 4;  // SEEK_HOLE
#endif
