/* gst-mediamtx: the DTLS certificate of our webrtcbins, without a key-generation cost at start.
 *
 * GStreamer's dtls plugin (1.22 to 1.26) makes a process-wide default certificate the first time
 * any dtlsdec is constructed, whatever certificate is set on it afterwards: an RSA-2048 key,
 * 0.2 s on a PC and up to 1 s on a Raspberry Pi, paid by the first WebRTC session of every
 * process (webrtcbin creates its dtlsdec while making the first offer). Two parts remove that:
 *
 * - prepare_dtls_default_certificate(): before the first dtlsdec exists, serve that default
 *   certificate's RSA key from a per-user cache (a 0600 file under $XDG_CACHE_HOME/gst-mediamtx,
 *   made once per user) instead of generating it, through OpenSSL's RSA key-generation hook, armed
 *   on the calling thread for the one construction. A process that already has the default
 *   certificate, or GStreamer >= 1.28 (which makes ECDSA P-256 there), is left alone.
 * - use_dtls_certificate(webrtcbin): every DTLS transport of that webrtcbin uses an ECDSA P-256
 *   self-signed certificate made once per process (~1 ms), as browsers do: the SDP fingerprint is
 *   the EC one and the DTLS handshake signs with ECDSA (far cheaper than RSA on a Pi).
 *
 * Without libcrypto at build time both are no-ops and webrtcbin behaves as stock.
 */
#pragma once

#include <gst/gst.h>
#include <gst/sdp/sdp.h>

#include <string>

namespace gstmtx {

/* Certificate then private key, PEM; empty when none could be made. Thread-safe, made once. */
const std::string &dtls_certificate_pem();

/* Call before creating a webrtcbin; cheap after the first call. Thread-safe. */
void prepare_dtls_default_certificate();

/* Sets our certificate on webrtcbin's DTLS transports, those it has and those it makes later.
 * Returns the signal handler id on webrtcbin (0 when there is no certificate to set). */
gulong use_dtls_certificate(GstElement *webrtcbin);

/* webrtcbin (1.22 to 1.26) writes in the SDP the digest of every base64 line of its certificate
 * property, the private key's too, so an offer made with our certificate carries a fingerprint
 * that matches nothing. Replaces such fingerprints in sdp (session and media level) by our
 * certificate's own SHA-256 one; leaves any other alone. Returns how many were replaced. */
unsigned correct_sdp_fingerprints(GstSDPMessage *sdp);

/* "sha-256 AB:CD:..." of our certificate; empty without one. */
std::string dtls_certificate_fingerprint();

/* Where the default certificate's RSA key is cached (for tests and docs). */
std::string dtls_default_key_cache_path();

}  // namespace gstmtx
