/* Linked (whole) into every gst-check test program: OpenSSL is initialised before main() without its
 * exit-time clean-up.
 *
 * OpenSSL 3 registers OPENSSL_cleanup() with atexit(). That function assumes the process has one
 * thread left (crypto/init.c: "We assume we are single-threaded for this function"): it frees the
 * thread-event list of every thread that ever used OpenSSL (crypto/initthread.c,
 * init_thread_deregister(NULL, 1)), without the lock and without clearing those threads' locals,
 * then deletes the thread-local keys. A test process exits with idle GStreamer task-pool threads
 * that ran DTLS (webrtcbin's dtlsdec/dtlsenc on nicesrc streaming threads); GLib lets the surplus
 * ones exit at about the same moment. A pool thread whose thread-local destructor runs during the
 * clean-up frees its list a second time (glibc "double free or corruption" / "malloc_consolidate",
 * the rare abort at exit of docs/reliability.md); one that exits after it never frees its error
 * queue (LeakSanitizer: 904 bytes from ERR_clear_error). With OPENSSL_INIT_NO_ATEXIT on the first
 * initialisation, before GStreamer loads the DTLS plugin, every thread frees its own state in its
 * destructor and nothing is freed behind a live thread's back; the process exits without the
 * global clean-up, as it would with _exit(). */
#include <openssl/crypto.h>

__attribute__((constructor)) static void openssl_without_atexit_cleanup() {
  OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, nullptr);
}
