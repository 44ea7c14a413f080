/* gst-mediamtx: the per-packet TWCC feedback that GStreamer's rtpsession hands a sender.
 *
 * When a transport-wide feedback message (RTCP RTPFB, FMT 15) arrives, rtpsession (gst-plugins-good
 * rtpmanager, GStreamer 1.22 to 1.26 alike) matches it against the packets it sent and pushes a
 * custom upstream event out of its send_rtp_sink pad: a structure "RTPTWCCPackets" whose
 * "packets" field (a GValueArray) holds one "RTPTWCCPacket" per reported packet: "seqnum"
 * (guint, the transport-wide number), "local-ts" (guint64 ns, when rtpsession sent it, or the
 * socket's time when known), "remote-ts" (guint64 ns in the receiver's clock, GST_CLOCK_TIME_NONE
 * when lost), "size" (guint, bytes), "lost" (gboolean). The event travels upstream through
 * webrtcbin to whatever feeds it; a pad probe on the payloader's src pad sees it.
 *
 * twcc_packets_from_structure turns it into gstmtx::TwccPacket values (gst/twcc_estimator.h):
 * anything malformed (another structure, no array, entries that are not structures, a sequence
 * number past 16 bits, a missing or invalid send time) is skipped, never trusted. */
#pragma once

#include <gst/gst.h>

#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "twcc_estimator.h"

namespace gstmtx {

/* The structure name of rtpsession's per-packet feedback event. */
inline constexpr const char *kTwccPacketsEvent = "RTPTWCCPackets";

/* True when `s` is an "RTPTWCCPackets" structure with a packet array; the packets it could read
 * are appended to `out` (entries it cannot read are left out). */
bool twcc_packets_from_structure(const GstStructure *s, std::vector<TwccPacket> *out);

/* A TwccEstimator fed by a pad probe: attach() to the src pad of the element that feeds a
 * webrtcbin sink pad (the payloader); every "RTPTWCCPackets" event passing upstream there goes
 * into the estimator (on rtpsession's RTCP thread), and read() gives its estimate (any thread).
 * The probe holds the estimator's state by a shared reference: the tap may go before the pad. */
class TwccFeedbackTap {
public:
  TwccFeedbackTap();
  ~TwccFeedbackTap();
  TwccFeedbackTap(const TwccFeedbackTap &) = delete;
  TwccFeedbackTap &operator=(const TwccFeedbackTap &) = delete;

  void attach(GstPad *pad);
  void detach();
  /* The estimate when feedback arrived since the last read() (false: none new; *estimate left). */
  bool read(TwccEstimate *estimate);
  /* Feedback messages seen so far. */
  unsigned long messages() const;
  /* Called on rtpsession's RTCP thread with the estimate after each feedback message (not under
   * the tap's lock); set before attach(). detach() removes it and waits for a call in progress,
   * so nothing the listener uses is called after detach() returns. */
  void set_listener(std::function<void(const TwccEstimate &)> listener);

  struct Shared {
    mutable std::mutex lock;
    TwccEstimator estimator;
    unsigned long messages = 0;
    unsigned long read_messages = 0;
    std::mutex listener_lock; /* held while the listener runs, and to change it */
    std::function<void(const TwccEstimate &)> listener;
  };

private:
  void remove_probe();

  std::shared_ptr<Shared> shared_;
  GstPad *pad_ = nullptr; /* ref held while attached */
  gulong probe_ = 0;
};

}  // namespace gstmtx
