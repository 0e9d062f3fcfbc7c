/*
 * libfspf: read FSPF protected volumes inside the calling process.
 *
 * Every byte a read returns has been verified, lazily, against the volume's sealed metadata
 * exactly as fspf-mount verifies it (docs/FORMAT.md); nothing is handed to the kernel, so the
 * plaintext stays in this process's memory (an SGX enclave's, under Gramine or Occlum).
 *
 * Handles are the only state: a volume handle and the file and directory handles made from
 * it. All functions are thread-safe; one file handle may be read from many threads at once
 * (fspf_pread has no file position). Close every file and directory handle before the volume
 * handle that made them. Every function that can fail takes an optional fspf_error (NULL:
 * no message wanted) and returns an fspf_status; the message names the path and the cause.
 *
 * The key is copied into locked, guarded memory (libsodium) at open and wiped at close; the
 * caller should wipe its own copy. Key sources (files, environment, the attested key server)
 * are read by the library itself with fspf_volume_open_options, so the key need never be in
 * the caller's memory at all.
 */
#ifndef FSPF_H
#define FSPF_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FSPF_API_VERSION 1

/* Status codes. Stable: new codes are only ever added. */
typedef enum fspf_status {
    FSPF_OK = 0,
    FSPF_E_USAGE = 1,           /* bad argument: NULL where a value is needed, bad tag, unknown option */
    FSPF_E_NOT_FOUND = 2,       /* no such volume, or no such path in the volume */
    FSPF_E_NOT_A_VOLUME = 3,    /* not an FSPF volume, unsupported format, or a format-1 volume under a tag */
    FSPF_E_WRONG_KEY = 4,       /* the key does not open this volume */
    FSPF_E_INTEGRITY = 5,       /* tampered, truncated, swapped, or not the version the tag pins */
    FSPF_E_IO = 6,              /* a system call failed (the message names it and errno) */
    FSPF_E_KEY_SOURCE = 7,      /* the key source could not deliver (file, variable, agent, key server) */
    FSPF_E_NOT_A_DIRECTORY = 8, /* fspf_list on something that is not a directory */
    FSPF_E_NOT_A_FILE = 9,      /* fspf_open on a directory or symbolic link; fspf_readlink on a non-link */
    FSPF_E_INTERNAL = 10        /* a bug: please report it with the message */
} fspf_status;

/* What failed, for humans; message is NUL-terminated and truncated to fit. */
typedef struct fspf_error {
    int code;
    char message[1024];
} fspf_error;

/* A static description of a status code ("integrity check failed", ...). Never NULL. */
const char *fspf_strerror(int code);

/* The release version ("0.3.0"), as `fspf --version` prints it. */
const char *fspf_version(void);

typedef struct fspf_volume fspf_volume;
typedef struct fspf_file fspf_file;
typedef struct fspf_dir fspf_dir;

/* Flags of fspf_volume_open. */
#define FSPF_OPEN_NO_TAG_CHECK 1u /* open without an expected tag: no rollback protection */
#define FSPF_OPEN_ACCEPT_V1 2u    /* open a format-1 volume under a tag (FORMAT.md section 13) */

/*
 * Opens the volume at `path` (its directory or its metadata file) with a 32-byte key.
 * `tag` is the expected tag in hex: the full tag (64 digits) or SCONE's short form (32);
 * NULL only with FSPF_OPEN_NO_TAG_CHECK. Any other version of the volume is refused before
 * a byte of it is read.
 */
fspf_status fspf_volume_open(const char *path, const uint8_t *key, size_t key_length, const char *tag,
                             unsigned flags, fspf_volume **volume, fspf_error *error);

/*
 * Opens the volume at `path` with the key and tag from options: a NULL-terminated array of
 * "name=value" strings with fspf-mount's option names: key-file, key-env (removed from the
 * environment once read), key-fd, key-url (loopback only unless allow-remote-key-url=true, then
 * https with key-url-ca), key-timeout, key-broker with evidence (sgx, maa,
 * simulated) and broker-identity, volume-name, broker-ca, attestation-dir, collateral, maa-attester, attester-key,
 * simulated-mrenclave; tag, tag-env; no-tag-check, accept-v1 (=true). Exactly one key source;
 * the tag comes from tag/tag-env or from the key resource (a key server reply carries it).
 */
fspf_status fspf_volume_open_options(const char *path, const char *const *options, fspf_volume **volume,
                                     fspf_error *error);

/* Wipes the key and frees the volume. NULL is allowed. */
void fspf_volume_close(fspf_volume *volume);

/* The volume's full tag (64 hex digits and NUL) and its format version (1 or 2). */
fspf_status fspf_volume_tag(const fspf_volume *volume, char tag[65], fspf_error *error);
int fspf_volume_format(const fspf_volume *volume);

typedef enum fspf_type { FSPF_TYPE_FILE = 1, FSPF_TYPE_DIRECTORY = 2, FSPF_TYPE_SYMLINK = 3 } fspf_type;
typedef enum fspf_region {
    FSPF_REGION_NONE = 0, /* directories and symbolic links */
    FSPF_REGION_ENCRYPTED = 1,
    FSPF_REGION_AUTHENTICATED = 2,
    FSPF_REGION_NOT_PROTECTED = 3 /* served as stored: not verified */
} fspf_region;

typedef struct fspf_stat {
    uint32_t type;   /* fspf_type */
    uint32_t mode;   /* permission bits, setuid, setgid, sticky */
    uint64_t size;   /* bytes (a symbolic link: its target's length) */
    int64_t mtime_sec;
    uint32_t mtime_nsec;
    uint32_t uid;
    uint32_t gid;
    uint32_t region; /* fspf_region */
    uint64_t inode;  /* stable within the volume; hard links share it */
} fspf_stat;

/* Paths are volume paths: "/", "", "dir/file" and "/dir/file" all work; "." and empty
 * components are skipped, ".." is refused. Symbolic links are not followed (lstat semantics). */
fspf_status fspf_stat_path(fspf_volume *volume, const char *path, fspf_stat *stat, fspf_error *error);

/* The target of a symbolic link, NUL-terminated; `*length` is its length without the NUL.
 * FSPF_E_USAGE (and the needed size in *length) if `capacity` is too small. */
fspf_status fspf_readlink(fspf_volume *volume, const char *path, char *target, size_t capacity, size_t *length,
                          fspf_error *error);

/* A directory's entries in name order (without "." and ".."). */
fspf_status fspf_list(fspf_volume *volume, const char *path, fspf_dir **dir, fspf_error *error);
size_t fspf_dir_count(const fspf_dir *dir);
/* Name of entry i (NULL if i >= count); valid until fspf_dir_close. */
const char *fspf_dir_name(const fspf_dir *dir, size_t i);
fspf_status fspf_dir_stat(const fspf_dir *dir, size_t i, fspf_stat *stat, fspf_error *error);
void fspf_dir_close(fspf_dir *dir);

/* Opens a regular file for reading. */
fspf_status fspf_open(fspf_volume *volume, const char *path, fspf_file **file, fspf_error *error);
uint64_t fspf_file_size(const fspf_file *file);

/*
 * Reads up to `count` bytes at `offset` into `buffer`; `*bytes_read` is how many (0 at or past
 * the end of the file, `count` otherwise unless the file ends first). On failure `buffer` is
 * zeroed: nothing unverified is ever left in it. Large reads use the process's cores.
 */
fspf_status fspf_pread(fspf_file *file, void *buffer, size_t count, uint64_t offset, size_t *bytes_read,
                       fspf_error *error);

void fspf_close(fspf_file *file);

#ifdef __cplusplus
}
#endif

#endif /* FSPF_H */
