#ifndef FSPF_COPENSSL_SHIM_H
#define FSPF_COPENSSL_SHIM_H
// Only what FSPFCore uses: AES-256-GCM through EVP, SHA-256, HMAC and HKDF.
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/err.h>
#include <openssl/crypto.h>

// EVP_CIPHER_CTX_ctrl takes an int command; the GCM constants are plain macros Swift
// imports, but keeping the calls here documents exactly which controls we rely on.
static inline int fspf_gcm_set_tag(EVP_CIPHER_CTX *ctx, const unsigned char *tag) {
    return EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, (void *)tag);
}
static inline int fspf_gcm_get_tag(EVP_CIPHER_CTX *ctx, unsigned char *tag) {
    return EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, tag);
}
#endif
