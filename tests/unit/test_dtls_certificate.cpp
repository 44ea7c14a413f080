/* The DTLS certificate of our webrtcbins (gst/dtls_certificate.h): an ECDSA P-256 certificate in
 * the offer, and the dtls plugin's process-wide default key served from the per-user cache rather
 * than generated. Each test runs in its own process (forked): the default certificate is made
 * once per process. */
#include <gst/check/gstcheck.h>
#include <gst/sdp/sdp.h>
#include <gst/webrtc/webrtc.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <glib/gstdio.h>

#include <string>

#include "dtls_certificate.h"

using namespace gstmtx;

namespace {
char *cache_dir = nullptr;

X509 *read_x509(const std::string &pem) {
  BIO *bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509 *x = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  return x;
}

/* The dtls plugin's default certificate, read from a dtlsdec without a certificate of its own. */
std::string default_certificate_pem() {
  GstElement *dec = gst_element_factory_make("dtlsdec", nullptr);
  fail_unless(dec != nullptr, "no dtlsdec (gstreamer1.0-plugins-bad)");
  gchar *pem = nullptr;
  g_object_get(dec, "pem", &pem, nullptr);
  std::string text = pem ? pem : "";
  g_free(pem);
  gst_object_unref(gst_object_ref_sink(dec));
  return text;
}

EVP_PKEY *make_rsa_key() {
  EVP_PKEY *key = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048));
  fail_unless(key != nullptr);
  return key;
}

void write_key(EVP_PKEY *key, int mode) {
  std::string path = dtls_default_key_cache_path();
  g_autofree char *dir = g_path_get_dirname(path.c_str());
  g_mkdir_with_parents(dir, 0700);
  BIO *bio = BIO_new_file(path.c_str(), "w");
  fail_unless(bio && PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr));
  BIO_free(bio);
  g_chmod(path.c_str(), mode);
}

EVP_PKEY *read_cached_key() {
  BIO *bio = BIO_new_file(dtls_default_key_cache_path().c_str(), "r");
  fail_unless(bio != nullptr, "no cached key at %s", dtls_default_key_cache_path().c_str());
  EVP_PKEY *key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  fail_unless(key != nullptr);
  return key;
}

/* Is the public key of the dtls plugin's default certificate that of `key`? */
bool default_certificate_uses(EVP_PKEY *key) {
  X509 *cert = read_x509(default_certificate_pem());
  fail_unless(cert != nullptr, "the dtls default certificate is not a PEM certificate");
  bool same = EVP_PKEY_eq(X509_get0_pubkey(cert), key) == 1;
  X509_free(cert);
  return same;
}

int cached_key_mode() {
  GStatBuf st;
  fail_unless(g_stat(dtls_default_key_cache_path().c_str(), &st) == 0);
  return st.st_mode & 0777;
}
}  // namespace

GST_START_TEST(test_certificate_is_ecdsa_p256) {
  const std::string &pem = dtls_certificate_pem();
  fail_if(pem.empty());
  fail_unless(&pem == &dtls_certificate_pem(), "made more than once");
  X509 *cert = read_x509(pem);
  fail_unless(cert != nullptr);
  EVP_PKEY *pub = X509_get0_pubkey(cert);
  fail_unless_equals_int(EVP_PKEY_get_base_id(pub), EVP_PKEY_EC);
  char group[64] = "";
  size_t len = 0;
  fail_unless(EVP_PKEY_get_group_name(pub, group, sizeof group, &len));
  fail_unless_equals_string(group, "prime256v1");
  /* the private key that follows is the certificate's */
  BIO *bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  EVP_PKEY *key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  fail_unless(key != nullptr);
  fail_unless(X509_check_private_key(cert, key) == 1);
  /* valid now */
  fail_unless(X509_cmp_current_time(X509_get0_notBefore(cert)) < 0);
  fail_unless(X509_cmp_current_time(X509_get0_notAfter(cert)) > 0);
  EVP_PKEY_free(key);
  X509_free(cert);
}
GST_END_TEST;

/* A fresh user: the key is made once, cached 0600, and it is the default certificate's key. */
GST_START_TEST(test_default_key_cached_when_missing) {
  g_unlink(dtls_default_key_cache_path().c_str());
  prepare_dtls_default_certificate();
  fail_unless_equals_int(cached_key_mode(), 0600);
  EVP_PKEY *cached = read_cached_key();
  fail_unless_equals_int(EVP_PKEY_get_base_id(cached), EVP_PKEY_RSA);
  fail_unless_equals_int(EVP_PKEY_get_bits(cached), 2048);
  fail_unless(default_certificate_uses(cached));
  EVP_PKEY_free(cached);
}
GST_END_TEST;

/* Next processes: the cached key is served, not generated again. */
GST_START_TEST(test_default_key_served_from_cache) {
  EVP_PKEY *key = make_rsa_key();
  write_key(key, 0600);
  prepare_dtls_default_certificate();
  fail_unless(default_certificate_uses(key));
  /* later RSA keys of the process are generated as usual, not the cached one */
  EVP_PKEY *other = make_rsa_key();
  fail_if(EVP_PKEY_eq(other, key) == 1);
  EVP_PKEY_free(other);
  EVP_PKEY_free(key);
}
GST_END_TEST;

/* A key others can read is no secret: not used, replaced by a new 0600 one. */
GST_START_TEST(test_default_key_readable_by_others_replaced) {
  EVP_PKEY *key = make_rsa_key();
  write_key(key, 0644);
  prepare_dtls_default_certificate();
  fail_if(default_certificate_uses(key));
  fail_unless_equals_int(cached_key_mode(), 0600);
  EVP_PKEY *cached = read_cached_key();
  fail_unless(default_certificate_uses(cached));
  EVP_PKEY_free(cached);
  EVP_PKEY_free(key);
}
GST_END_TEST;

/* webrtcbin's offer carries the fingerprint of our ECDSA certificate. */
GST_START_TEST(test_offer_fingerprint_is_ours) {
  prepare_dtls_default_certificate();
  GstElement *pipeline = gst_pipeline_new(nullptr);
  GstElement *webrtc = gst_element_factory_make("webrtcbin", nullptr);
  fail_unless(webrtc != nullptr);
  gst_bin_add(GST_BIN(pipeline), webrtc);
  fail_unless(use_dtls_certificate(webrtc) != 0);
  fail_unless(gst_element_set_state(pipeline, GST_STATE_READY) == GST_STATE_CHANGE_SUCCESS);
  GstCaps *caps = gst_caps_from_string("application/x-rtp,media=video,encoding-name=H264,clock-rate=90000,payload=96");
  GstWebRTCRTPTransceiver *trans = nullptr;
  g_signal_emit_by_name(webrtc, "add-transceiver", GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_RECVONLY, caps, &trans);
  gst_caps_unref(caps);
  fail_unless(trans != nullptr);
  gst_object_unref(trans);
  GstPromise *promise = gst_promise_new();
  g_signal_emit_by_name(webrtc, "create-offer", nullptr, promise);
  fail_unless_equals_int(gst_promise_wait(promise), GST_PROMISE_RESULT_REPLIED);
  GstWebRTCSessionDescription *offer = nullptr;
  gst_structure_get(gst_promise_get_reply(promise), "offer", GST_TYPE_WEBRTC_SESSION_DESCRIPTION, &offer, nullptr);
  gst_promise_unref(promise);
  fail_unless(offer != nullptr);
  auto fingerprint = [&] {
    const char *value = gst_sdp_media_get_attribute_val(gst_sdp_message_get_media(offer->sdp, 0), "fingerprint");
    if (!value)
      value = gst_sdp_message_get_attribute_val(offer->sdp, "fingerprint");
    fail_unless(value != nullptr);
    return std::string(value);
  };

  X509 *cert = read_x509(dtls_certificate_pem());
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  fail_unless(X509_digest(cert, EVP_sha256(), digest, &len));
  X509_free(cert);
  std::string expected = "sha-256 ";
  for (unsigned i = 0; i < len; ++i) {
    char hex[4];
    g_snprintf(hex, sizeof hex, i ? ":%02X" : "%02X", digest[i]);
    expected += hex;
  }
  const std::string ours = dtls_certificate_fingerprint();
  fail_unless_equals_string(ours.c_str(), expected.c_str());
  /* webrtcbin's own is a digest over the key too (if it ever writes the right one, nothing to do) */
  const std::string before = fingerprint();
  const unsigned replaced = correct_sdp_fingerprints(offer->sdp);
  fail_unless(replaced >= 1 || g_ascii_strcasecmp(before.c_str(), expected.c_str()) == 0,
              "the offer's fingerprint %s is neither ours nor webrtcbin's digest of our PEM", before.c_str());
  fail_unless(g_ascii_strcasecmp(fingerprint().c_str(), expected.c_str()) == 0, "offer has %s, ours is %s",
              fingerprint().c_str(), expected.c_str());
  /* a fingerprint that is not webrtcbin's for our certificate is left alone */
  fail_unless_equals_int(correct_sdp_fingerprints(offer->sdp), 0);
  gst_webrtc_session_description_free(offer);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(pipeline);
}
GST_END_TEST;

static Suite *dtls_certificate_suite() {
  Suite *s = suite_create("dtls_certificate");
  TCase *tc = tcase_create("general");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_certificate_is_ecdsa_p256);
  tcase_add_test(tc, test_default_key_cached_when_missing);
  tcase_add_test(tc, test_default_key_served_from_cache);
  tcase_add_test(tc, test_default_key_readable_by_others_replaced);
  tcase_add_test(tc, test_offer_fingerprint_is_ours);
  suite_add_tcase(s, tc);
  return s;
}

int main(int argc, char **argv) {
  /* the per-user cache of this run, set before GLib reads (and keeps) XDG_CACHE_HOME */
  cache_dir = g_dir_make_tmp("mtx-dtls-XXXXXX", nullptr);
  g_setenv("XDG_CACHE_HOME", cache_dir, TRUE);
  gst_check_init(&argc, &argv);
  SRunner *runner = srunner_create(dtls_certificate_suite());
  srunner_set_fork_status(runner, CK_FORK); /* one process per test: see the top */
  srunner_run_all(runner, CK_NORMAL);
  int failed = srunner_ntests_failed(runner);
  srunner_free(runner);
  g_autofree char *key = g_build_filename(cache_dir, "gst-mediamtx", "dtls-default-rsa2048.pem", nullptr);
  g_autofree char *sub = g_build_filename(cache_dir, "gst-mediamtx", nullptr);
  g_unlink(key);
  g_rmdir(sub);
  g_rmdir(cache_dir);
  g_free(cache_dir);
  return failed ? 1 : 0;
}
