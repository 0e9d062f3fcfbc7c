#ifndef FSPF_CFUSE3_SHIM_H
#define FSPF_CFUSE3_SHIM_H
// libfuse3 low-level API for Swift. FUSE_USE_VERSION must be set here: a cSettings define
// does not reach Swift's importer. Entry points that libfuse turns into macros or versioned
// symbols (3.12+, 3.17+) are wrapped in static inline functions so one Swift source builds
// against 3.14 and newer.
#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <sys/prctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>

static inline struct fuse_session *fspf_fuse_session_new(struct fuse_args *args,
        const struct fuse_lowlevel_ops *ops, void *userdata) {
    return fuse_session_new(args, ops, sizeof(*ops), userdata);
}

static inline int fspf_fuse_session_loop_mt(struct fuse_session *se, unsigned max_threads) {
    struct fuse_loop_config *config = fuse_loop_cfg_create();
    if (!config) return -1;
    fuse_loop_cfg_set_clone_fd(config, 1);
    fuse_loop_cfg_set_max_threads(config, max_threads);
    fuse_loop_cfg_set_idle_threads(config, max_threads);
    int r = fuse_session_loop_mt(se, config);
    fuse_loop_cfg_destroy(config);
    return r;
}

// fuse_file_info flags are bit-fields; set them here rather than rely on Swift's bit-field import.
static inline void fspf_fi_set_cached(struct fuse_file_info *fi) {
    fi->keep_cache = 1;   // the volume is immutable while mounted: keep the page cache across opens
    fi->direct_io = 0;
}

static inline int fspf_fi_flags(const struct fuse_file_info *fi) { return fi->flags; }
static inline uint64_t fspf_fi_fh(const struct fuse_file_info *fi) { return fi->fh; }
static inline void fspf_fi_set_fh(struct fuse_file_info *fi, uint64_t fh) { fi->fh = fh; }

// prctl is variadic, which Swift cannot call.
static inline int fspf_set_not_dumpable(void) { return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0); }
static inline int fspf_is_dumpable(void) { return prctl(PR_GET_DUMPABLE, 0, 0, 0, 0); }
#endif
