#ifndef FSPF_COPENSSL_SHIM_H
#define FSPF_COPENSSL_SHIM_H
// What FSPF uses from OpenSSL: AES-256-GCM through EVP, SHA-256, HMAC and HKDF (FSPFCore);
// X.509 chains, CRLs, ECDSA and RSA signatures (FSPFAttestation); TLS (FSPFKeyBroker).
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/err.h>
#include <openssl/crypto.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/x509_vfy.h>
#include <openssl/pem.h>
#include <openssl/bio.h>
#include <openssl/ecdsa.h>
#include <openssl/bn.h>
#include <openssl/ssl.h>

// EVP_CIPHER_CTX_ctrl takes an int command; the GCM constants are plain macros Swift
// imports, but keeping the calls here documents exactly which controls we rely on.
static inline int fspf_gcm_set_tag(EVP_CIPHER_CTX *ctx, const unsigned char *tag) {
    return EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, (void *)tag);
}
static inline int fspf_gcm_get_tag(EVP_CIPHER_CTX *ctx, unsigned char *tag) {
    return EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, tag);
}

// The following are macros or type-generic stacks in OpenSSL's headers, which Swift cannot call.
static inline STACK_OF(X509) *fspf_x509_stack_new(void) { return sk_X509_new_null(); }
static inline int fspf_x509_stack_push(STACK_OF(X509) *s, X509 *x) { return sk_X509_push(s, x); }
static inline void fspf_x509_stack_free(STACK_OF(X509) *s) { sk_X509_free(s); }
// RFC 2253 escaping in reading order ("CN=…, O=…"), UTF-8 kept as is.
static inline unsigned long fspf_name_print_flags(void) {
    return (XN_FLAG_RFC2253 & ~(XN_FLAG_DN_REV | XN_FLAG_SEP_MASK | ASN1_STRFLGS_ESC_MSB)) | XN_FLAG_SEP_CPLUS_SPC;
}
static inline long fspf_ssl_ctx_min_tls12(SSL_CTX *ctx) {
    return SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
}
static inline long fspf_ssl_set_sni(SSL *ssl, const char *name) {
    return SSL_set_tlsext_host_name(ssl, name);
}
#endif
