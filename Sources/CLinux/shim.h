#ifndef FSPF_CLINUX_SHIM_H
#define FSPF_CLINUX_SHIM_H
// Linux interfaces that Swift's Glibc module does not import: extended attributes, syncfs, openat2,
// renameat2, the lseek whences and pthread_getattr_np that glibc only declares under _GNU_SOURCE.
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <errno.h>
#include <unistd.h>

// syncfs(2), declared by glibc only under _GNU_SOURCE.
static inline int fspf_syncfs(int fd) { return (int)syscall(SYS_syncfs, fd); }

static const int FSPF_SEEK_DATA = 3;  // SEEK_DATA, linux/fs.h
static const int FSPF_SEEK_HOLE = 4;  // SEEK_HOLE

// openat2(2) (Linux 5.6), which glibc 2.36 does not wrap: opens `path` below `dirfd` with
// RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS, so that no component may be a symbolic link or leave the
// directory. -1 with errno ENOSYS on older kernels.
static inline int fspf_openat_no_symlinks(int dirfd, const char *path, int flags, mode_t mode) {
    struct { uint64_t flags, mode, resolve; } how = {(uint64_t)flags, (flags & 0100 /* O_CREAT */) ? (uint64_t)mode : 0,
                                                     0x08 /* RESOLVE_BENEATH */ | 0x04 /* RESOLVE_NO_SYMLINKS */};
    return (int)syscall(437 /* SYS_openat2 */, dirfd, path, &how, sizeof how);
}

// renameat2(2) with RENAME_NOREPLACE (glibc declares it under _GNU_SOURCE only): EEXIST where
// `newpath` exists, so a file is published under its name only if nothing is there. EINVAL on a
// file system without the flag.
static inline int fspf_rename_noreplace(int olddirfd, const char *oldpath, int newdirfd, const char *newpath) {
    return (int)syscall(SYS_renameat2, olddirfd, oldpath, newdirfd, newpath, 1U /* RENAME_NOREPLACE */);
}

int pthread_getattr_np(pthread_t thread, pthread_attr_t *attr);  // glibc, _GNU_SOURCE only

// statvfs(path) in a child process that first closes every descriptor above 2 (close_range):
// 0 once it returned, -1 if it could not be run. A FUSE daemon that asks its own mount in a
// thread of its own can never finish dying when SIGKILL comes while that request is being
// served: the waiting thread keeps /dev/fuse open, so the connection is never aborted and every
// process touching the mount hangs. The child holds no /dev/fuse descriptor, so the daemon dies
// whole and the child's request ends with ENOTCONN. Only system calls between fork and _exit.
static inline int fspf_probe_in_child(const char *path) {
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        syscall(436 /* SYS_close_range */, 3U, ~0U, 0U);
        struct statvfs s;
        _exit(statvfs(path, &s) == 0 ? 0 : 1);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) return -1;
    }
    return 0;
}

// memfd_create(2) with MFD_CLOEXEC: an anonymous file in memory (glibc declares it under _GNU_SOURCE).
static inline int fspf_memfd(const char *name) {
    return (int)syscall(319 /* SYS_memfd_create */, name, 1U /* MFD_CLOEXEC */);
}

// The calling thread's stack size in bytes, 0 if unknown.
static inline size_t fspf_thread_stack_size(void) {
    pthread_attr_t attr;
    size_t size = 0;
    if (pthread_getattr_np(pthread_self(), &attr) != 0) return 0;
    pthread_attr_getstacksize(&attr, &size);
    pthread_attr_destroy(&attr);
    return size;
}
#endif
