#include "dtls_certificate.h"

#include <glib/gstdio.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>

#ifdef GSTMTX_HAVE_LIBCRYPTO
/* The RSA key-generation hook is OpenSSL's RSA_METHOD API, deprecated (not removed) in 3.0: the
 * dtls plugin calls RSA_generate_key_ex, and this hook is the only way in. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <unistd.h>
#endif

GST_DEBUG_CATEGORY_STATIC(mtx_dtls_debug);
#define GST_CAT_DEFAULT mtx_dtls_debug

namespace gstmtx {

namespace {
void init_debug() {
  static gsize once = 0;
  if (g_once_init_enter(&once)) {
    GST_DEBUG_CATEGORY_INIT(mtx_dtls_debug, "mtxdtls", 0, "gst-mediamtx DTLS certificate");
    g_once_init_leave(&once, 1);
  }
}

#ifdef GSTMTX_HAVE_LIBCRYPTO
struct BioDeleter {
  void operator()(BIO *b) const { BIO_free(b); }
};
struct PkeyDeleter {
  void operator()(EVP_PKEY *k) const { EVP_PKEY_free(k); }
};
struct X509Deleter {
  void operator()(X509 *x) const { X509_free(x); }
};
struct RsaDeleter {
  void operator()(RSA *r) const { RSA_free(r); }
};
using BioPtr = std::unique_ptr<BIO, BioDeleter>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDeleter>;
using X509Ptr = std::unique_ptr<X509, X509Deleter>;
using RsaPtr = std::unique_ptr<RSA, RsaDeleter>;

std::string bio_text(BIO *bio) {
  char *data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  return len > 0 && data ? std::string(data, static_cast<std::size_t>(len)) : std::string();
}

/* ECDSA P-256, self-signed, SHA-256, valid from yesterday (clock skew) for 30 days: the shape of
 * a browser's RTCCertificate. Only its fingerprint matters to the peer (signalled in the SDP). */
std::string make_ec_certificate() {
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  X509Ptr cert(X509_new());
  if (!key || !cert)
    return {};
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set_uint64(X509_get_serialNumber(cert.get()),
                          (static_cast<uint64_t>(g_random_int()) << 31) ^ g_random_int());
  X509_NAME *name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char *>("gst-mediamtx"), -1,
                             -1, 0);
  X509_set_issuer_name(cert.get(), name);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -24L * 3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 30L * 24 * 3600);
  if (!X509_set_pubkey(cert.get(), key.get()) || !X509_sign(cert.get(), key.get(), EVP_sha256()))
    return {};
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || !PEM_write_bio_X509(bio.get(), cert.get()) ||
      !PEM_write_bio_PrivateKey(bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr))
    return {};
  return bio_text(bio.get());
}

/* ---- the dtls plugin's default certificate: its RSA key served from the per-user cache ---- */

RSA *cached_rsa = nullptr;                   /* set before arming, kept for the process */
std::atomic<GThread *> armed_thread{nullptr}; /* the one thread whose key generation we serve */

bool copy_components(RSA *to, const RSA *from) {
  const BIGNUM *n, *e, *d, *p, *q, *dp, *dq, *qi;
  RSA_get0_key(from, &n, &e, &d);
  RSA_get0_factors(from, &p, &q);
  RSA_get0_crt_params(from, &dp, &dq, &qi);
  if (!n || !e || !d || !p || !q || !dp || !dq || !qi)
    return false;
  return RSA_set0_key(to, BN_dup(n), BN_dup(e), BN_dup(d)) && RSA_set0_factors(to, BN_dup(p), BN_dup(q)) &&
         RSA_set0_crt_params(to, BN_dup(dp), BN_dup(dq), BN_dup(qi));
}

/* OpenSSL's RSA key-generation hook, installed as the default RSA method only while our thread
 * constructs the first dtlsdec. Any other caller (another thread that created an RSA object in
 * that window) gets a freshly generated key, as without the hook. */
int serve_cached_key(RSA *rsa, int bits, BIGNUM *e, BN_GENCB *cb) {
  GThread *self = g_thread_self();
  if (cached_rsa && armed_thread.load() == self && bits == RSA_bits(cached_rsa) &&
      BN_cmp(e, RSA_get0_e(cached_rsa)) == 0) {
    armed_thread.store(nullptr); /* one key, once */
    GST_INFO("serving the dtls plugin's default certificate key from the per-user cache");
    return copy_components(rsa, cached_rsa) ? 1 : 0;
  }
  RsaPtr fresh(RSA_new());
  if (!fresh || !RSA_set_method(fresh.get(), RSA_PKCS1_OpenSSL()) ||
      !RSA_generate_multi_prime_key(fresh.get(), bits, 2, e, cb))
    return 0;
  return copy_components(rsa, fresh.get()) ? 1 : 0;
}

/* A cached key we trust: ours (owner, no group/other access), RSA-2048, e = 65537, n = p*q. */
RsaPtr load_cached_key(const std::string &path) {
  GStatBuf st;
  if (g_stat(path.c_str(), &st) != 0)
    return nullptr;
  if (st.st_uid != getuid() || (st.st_mode & 077)) {
    GST_WARNING("ignoring %s: it must be owned by this user and mode 0600", path.c_str());
    return nullptr;
  }
  g_autofree char *text = nullptr;
  gsize len = 0;
  if (!g_file_get_contents(path.c_str(), &text, &len, nullptr))
    return nullptr;
  BioPtr bio(BIO_new_mem_buf(text, static_cast<int>(len)));
  RsaPtr key(bio ? PEM_read_bio_RSAPrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!key || RSA_bits(key.get()) != 2048)
    return nullptr;
  const BIGNUM *n, *e, *d, *p, *q;
  RSA_get0_key(key.get(), &n, &e, &d);
  RSA_get0_factors(key.get(), &p, &q);
  BN_CTX *ctx = BN_CTX_new();
  BIGNUM *product = BN_new();
  bool ok = ctx && product && p && q && d && BN_is_word(e, RSA_F4) && BN_mul(product, p, q, ctx) &&
            BN_cmp(product, n) == 0;
  BN_free(product);
  BN_CTX_free(ctx);
  return ok ? std::move(key) : nullptr;
}

/* Made the way the dtls plugin makes it (RSA-2048, e = 65537), written 0600 atomically. */
RsaPtr make_cached_key(const std::string &path) {
  RsaPtr key(RSA_new());
  BIGNUM *e = BN_new();
  bool ok = key && e && BN_set_word(e, RSA_F4) && RSA_generate_key_ex(key.get(), 2048, e, nullptr);
  BN_free(e);
  if (!ok)
    return nullptr;
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || !PEM_write_bio_RSAPrivateKey(bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr))
    return key;
  std::string text = bio_text(bio.get());
  g_autofree char *dir = g_path_get_dirname(path.c_str());
  g_autoptr(GError) error = nullptr;
  if (g_mkdir_with_parents(dir, 0700) != 0 ||
      !g_file_set_contents_full(path.c_str(), text.data(), static_cast<gssize>(text.size()),
                                G_FILE_SET_CONTENTS_CONSISTENT, 0600, &error))
    GST_WARNING("could not cache the DTLS key in %s (%s): the next process generates it again", path.c_str(),
                error ? error->message : g_strerror(errno));
  return key;
}

/* GStreamer 1.28's dtls plugin makes an ECDSA P-256 default certificate: nothing to save there. */
bool dtls_plugin_generates_rsa() {
  GstPlugin *plugin = gst_registry_find_plugin(gst_registry_get(), "dtls");
  if (!plugin)
    return false;
  guint major = 0, minor = 0;
  bool rsa = sscanf(gst_plugin_get_version(plugin), "%u.%u", &major, &minor) == 2 &&
             (major < 1 || (major == 1 && minor < 28));
  gst_object_unref(plugin);
  return rsa;
}
#endif
}  // namespace

std::string dtls_default_key_cache_path() {
  g_autofree char *path = g_build_filename(g_get_user_cache_dir(), "gst-mediamtx", "dtls-default-rsa2048.pem", nullptr);
  return path;
}

const std::string &dtls_certificate_pem() {
  static const std::string pem = [] {
    init_debug();
#ifdef GSTMTX_HAVE_LIBCRYPTO
    gint64 start = g_get_monotonic_time();
    std::string text = make_ec_certificate();
    GST_INFO("ECDSA P-256 DTLS certificate made in %" G_GINT64_FORMAT " us%s", g_get_monotonic_time() - start,
             text.empty() ? " (FAILED: webrtcbin keeps its own)" : "");
    return text;
#else
    return std::string();
#endif
  }();
  return pem;
}

void prepare_dtls_default_certificate() {
  static std::once_flag once;
  std::call_once(once, [] {
    init_debug();
#ifdef GSTMTX_HAVE_LIBCRYPTO
    if (!dtls_plugin_generates_rsa())
      return;
    gint64 start = g_get_monotonic_time();
    std::string path = dtls_default_key_cache_path();
    RsaPtr key = load_cached_key(path);
    if (!key)
      key = make_cached_key(path);
    if (!key)
      return;
    cached_rsa = key.release(); /* lives as long as the process (the dtls plugin's default does) */
    static RSA_METHOD *method = [] {
      RSA_METHOD *m = RSA_meth_dup(RSA_PKCS1_OpenSSL());
      if (m)
        RSA_meth_set_keygen(m, serve_cached_key);
      return m;
    }();
    if (!method)
      return;
    const RSA_METHOD *previous = RSA_get_default_method();
    armed_thread.store(g_thread_self());
    RSA_set_default_method(method);
    /* The dtls plugin makes its default certificate in the first dtlsdec's constructor. */
    GstElement *dtlsdec = gst_element_factory_make("dtlsdec", nullptr);
    RSA_set_default_method(previous);
    const bool served = armed_thread.exchange(nullptr) == nullptr;
    if (dtlsdec)
      gst_object_unref(gst_object_ref_sink(dtlsdec));
    GST_INFO("dtls default certificate %s in %" G_GINT64_FORMAT " us",
             served ? "made from the cached key" : "already there (or no dtlsdec)", g_get_monotonic_time() - start);
#endif
  });
}

namespace {
/* webrtcbin's DTLS transport forwards its certificate to its dtlssrtpdec: set it there. */
void set_certificate_if_dtls(GstElement *element) {
  GstElementFactory *factory = gst_element_get_factory(element);
  if (factory && g_strcmp0(GST_OBJECT_NAME(factory), "dtlssrtpdec") == 0)
    g_object_set(element, "pem", dtls_certificate_pem().c_str(), nullptr);
}
}  // namespace

gulong use_dtls_certificate(GstElement *webrtcbin) {
  if (dtls_certificate_pem().empty())
    return 0;
  /* transports made already (webrtcbin versions that make them with the transceiver) */
  GstIterator *it = gst_bin_iterate_recurse(GST_BIN(webrtcbin));
  GValue item = G_VALUE_INIT;
  while (gst_iterator_next(it, &item) == GST_ITERATOR_OK) {
    set_certificate_if_dtls(GST_ELEMENT(g_value_get_object(&item)));
    g_value_reset(&item);
  }
  g_value_unset(&item);
  gst_iterator_free(it);
  /* and those it makes later (1.22: while making the first offer), before the SDP is written */
  return g_signal_connect(webrtcbin, "deep-element-added",
                          G_CALLBACK(+[](GstBin *, GstBin *, GstElement *element, gpointer) {
                            set_certificate_if_dtls(element);
                          }),
                          nullptr);
}

namespace {
/* "sha-256 AB:CD:..." over the base64 lines of pem: all of them (what webrtcbin does), or only
 * those of its certificate block (the certificate's DER: its real fingerprint). */
std::string pem_fingerprint(const std::string &pem, bool certificate_only) {
  if (pem.empty())
    return {};
  std::string decoded(pem.size(), '\0');
  gsize out = 0;
  gint state = 0;
  guint save = 0;
  bool inside = !certificate_only;
  g_auto(GStrv) lines = g_strsplit(pem.c_str(), "\n", -1);
  for (char **line = lines; *line; ++line) {
    if (certificate_only && g_str_has_prefix(*line, "-----BEGIN CERTIFICATE-----")) {
      inside = true;
    } else if (certificate_only && g_str_has_prefix(*line, "-----END CERTIFICATE-----")) {
      break;
    } else if (inside && (*line)[0] && !g_str_has_prefix(*line, "-----")) {
      out += g_base64_decode_step(*line, strlen(*line), reinterpret_cast<guchar *>(&decoded[out]), &state, &save);
    }
  }
  GChecksum *sum = g_checksum_new(G_CHECKSUM_SHA256);
  g_checksum_update(sum, reinterpret_cast<const guchar *>(decoded.data()), out);
  guint8 digest[32];
  gsize len = sizeof digest;
  g_checksum_get_digest(sum, digest, &len);
  g_checksum_free(sum);
  std::string text = "sha-256 ";
  for (gsize i = 0; i < len; ++i) {
    char hex[4];
    g_snprintf(hex, sizeof hex, i ? ":%02X" : "%02X", digest[i]);
    text += hex;
  }
  return text;
}

bool replace_fingerprint(const GstSDPAttribute *attr, const std::string &wrong, GstSDPAttribute *out) {
  if (g_strcmp0(attr->key, "fingerprint") != 0 || !attr->value || g_ascii_strcasecmp(attr->value, wrong.c_str()) != 0)
    return false;
  gst_sdp_attribute_set(out, "fingerprint", dtls_certificate_fingerprint().c_str());
  return true;
}
}  // namespace

std::string dtls_certificate_fingerprint() {
  static const std::string fingerprint = pem_fingerprint(dtls_certificate_pem(), true);
  return fingerprint;
}

unsigned correct_sdp_fingerprints(GstSDPMessage *sdp) {
  static const std::string wrong = pem_fingerprint(dtls_certificate_pem(), false);
  if (wrong.empty())
    return 0;
  unsigned replaced = 0;
  GstSDPAttribute attr;
  for (guint i = 0; i < gst_sdp_message_attributes_len(sdp); ++i)
    if (replace_fingerprint(gst_sdp_message_get_attribute(sdp, i), wrong, &attr)) {
      gst_sdp_message_replace_attribute(sdp, i, &attr);
      ++replaced;
    }
  for (guint m = 0; m < gst_sdp_message_medias_len(sdp); ++m) {
    auto *media = const_cast<GstSDPMedia *>(gst_sdp_message_get_media(sdp, m));
    for (guint i = 0; i < gst_sdp_media_attributes_len(media); ++i)
      if (replace_fingerprint(gst_sdp_media_get_attribute(media, i), wrong, &attr)) {
        gst_sdp_media_replace_attribute(media, i, &attr);
        ++replaced;
      }
  }
  if (replaced)
    GST_DEBUG("offer fingerprint set to our ECDSA certificate's: %s", dtls_certificate_fingerprint().c_str());
  return replaced;
}

}  // namespace gstmtx
