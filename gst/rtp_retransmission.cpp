#include "rtp_retransmission.h"

#include <gst/rtp/rtp.h>

#include <algorithm>
#include <cstring>

namespace gstmtx {

const char *resend_verdict_name(ResendVerdict verdict) {
  switch (verdict) {
  case ResendVerdict::Resend: return "resend";
  case ResendVerdict::Unknown: return "unknown";
  case ResendVerdict::TooOld: return "too old";
  case ResendVerdict::TooSoon: return "too soon";
  case ResendVerdict::OverBudget: return "over budget";
  case ResendVerdict::Exhausted: return "exhausted";
  }
  return "?";
}

namespace {
bool rtp_fields(GstBuffer *buffer, std::uint32_t *ssrc, std::uint16_t *seq) {
  GstRTPBuffer rtp = GST_RTP_BUFFER_INIT;
  if (!buffer || !gst_rtp_buffer_map(buffer, GST_MAP_READ, &rtp))
    return false;
  *ssrc = gst_rtp_buffer_get_ssrc(&rtp);
  *seq = gst_rtp_buffer_get_seq(&rtp);
  gst_rtp_buffer_unmap(&rtp);
  return true;
}
}  // namespace

RetransmitHistory::RetransmitHistory(RetransmitLimits limits) : limits_(limits) {}

RetransmitHistory::~RetransmitHistory() { clear(); }

void RetransmitHistory::clear() {
  for (Entry &e : entries_)
    gst_buffer_unref(e.buffer);
  entries_.clear();
}

void RetransmitHistory::evict(std::int64_t now_us) {
  while (!entries_.empty() &&
         (entries_.size() > limits_.max_packets || now_us - entries_.front().sent_us > limits_.keep_us)) {
    gst_buffer_unref(entries_.front().buffer);
    entries_.pop_front();
  }
}

void RetransmitHistory::sent(GstBuffer *rtp, std::int64_t now_us) {
  std::uint32_t ssrc = 0;
  std::uint16_t seq = 0;
  if (!rtp_fields(rtp, &ssrc, &seq))
    return;
  /* a new stream, or the payloader's numbers jumped (a new sequence-number offset): what is kept
   * cannot be found by its number any more */
  if (!entries_.empty() && (ssrc != ssrc_ || seq != static_cast<std::uint16_t>(entries_.back().seq + 1)))
    clear();
  ssrc_ = ssrc;
  entries_.push_back(Entry{gst_buffer_ref(rtp), seq, now_us, -1, 0, gst_buffer_get_size(rtp), false});
  evict(now_us);
}

/* The kept packets are consecutive numbers (sent() starts again on a jump): by offset. */
RetransmitHistory::Entry *RetransmitHistory::find(std::uint16_t seq) {
  if (entries_.empty())
    return nullptr;
  const std::uint16_t offset = static_cast<std::uint16_t>(seq - entries_.front().seq);
  if (offset >= entries_.size())
    return nullptr;
  return &entries_[offset];
}

void RetransmitHistory::set_budget_kbps(int kbps) { budget_kbps_ = std::max(0, kbps); }

bool RetransmitHistory::spend(std::size_t bytes, std::int64_t now_us) {
  if (budget_kbps_ <= 0)
    return true;
  const double bytes_per_us = budget_kbps_ * 1000.0 / 8.0 / 1e6;
  const double depth = std::max(bytes_per_us * limits_.budget_window_us, 1500.0);
  if (refilled_us_ < 0)
    tokens_ = depth;
  else
    tokens_ = std::min(depth, tokens_ + bytes_per_us * static_cast<double>(std::max<std::int64_t>(0, now_us - refilled_us_)));
  refilled_us_ = now_us;
  if (tokens_ < static_cast<double>(bytes))
    return false;
  tokens_ -= static_cast<double>(bytes);
  return true;
}

ResendVerdict RetransmitHistory::request(std::uint32_t ssrc, std::uint16_t seq, std::int64_t now_us, GstBuffer **out,
                                         bool *given_up) {
  if (given_up)
    *given_up = false;
  evict(now_us);
  Entry *e = ssrc == ssrc_ ? find(seq) : nullptr;
  if (!e) /* never sent, or forgotten: a packet asked for before was reported when it was */
    return ResendVerdict::Unknown;
  ResendVerdict verdict;
  if (now_us - e->sent_us > limits_.resend_age_us)
    verdict = ResendVerdict::TooOld;
  else if (e->resends >= limits_.max_resends)
    verdict = ResendVerdict::Exhausted;
  else if (e->resent_us >= 0 && now_us - e->resent_us < limits_.min_spacing_us)
    return ResendVerdict::TooSoon;
  else if (!spend(e->bytes, now_us))
    return ResendVerdict::OverBudget;
  else
    verdict = ResendVerdict::Resend;
  if (verdict != ResendVerdict::Resend) {
    if (given_up && !e->given_up)
      *given_up = true;
    e->given_up = true;
    return verdict;
  }
  e->resends++;
  e->resent_us = now_us;
  *out = gst_buffer_ref(e->buffer);
  return verdict;
}

namespace {
constexpr const char *kRetransmissionRequest = "GstRTPRetransmissionRequest";
/* requests waiting for the streaming thread (a stalled stream: the oldest are dropped) */
constexpr std::size_t kMaxPending = 1024;
/* set while the streaming thread pushes a copy through the pad it watches */
thread_local bool pushing_copy = false;

/* rtpsession's RTCP thread: a NACK, one request per packet */
GstPadProbeReturn on_upstream_event(GstPad *, GstPadProbeInfo *info, gpointer data) {
  GstEvent *event = GST_PAD_PROBE_INFO_EVENT(info);
  if (!event || GST_EVENT_TYPE(event) != GST_EVENT_CUSTOM_UPSTREAM)
    return GST_PAD_PROBE_OK;
  const GstStructure *s = gst_event_get_structure(event);
  guint seqnum = 0, ssrc = 0;
  if (!s || !gst_structure_has_name(s, kRetransmissionRequest) || !gst_structure_get_uint(s, "seqnum", &seqnum) ||
      !gst_structure_get_uint(s, "ssrc", &ssrc) || seqnum > G_MAXUINT16)
    return GST_PAD_PROBE_OK;
  auto &shared = **static_cast<std::shared_ptr<RtpRetransmitter::Shared> *>(data);
  {
    std::lock_guard<std::mutex> lk(shared.lock);
    if (shared.pending.size() >= kMaxPending)
      shared.pending.erase(shared.pending.begin());
    shared.pending.emplace_back(ssrc, static_cast<std::uint16_t>(seqnum));
    shared.counts.requests++;
  }
  return GST_PAD_PROBE_DROP; /* served here: rtprtxsend upstream would only drop it */
}

/* the streaming thread: first the copies asked for, then the packet(s) on their way, kept */
GstPadProbeReturn on_data(GstPad *pad, GstPadProbeInfo *info, gpointer data) {
  if (pushing_copy)
    return GST_PAD_PROBE_OK;
  auto &shared = **static_cast<std::shared_ptr<RtpRetransmitter::Shared> *>(data);
  const std::int64_t now_us = g_get_monotonic_time();
  std::vector<std::pair<std::uint32_t, std::uint16_t>> pending;
  if (shared.forget.exchange(false)) {
    shared.history.clear();
    std::lock_guard<std::mutex> lk(shared.lock);
    shared.pending.clear();
  }
  const bool overflow = shared.overflow.load();
  {
    std::lock_guard<std::mutex> lk(shared.lock);
    pending.swap(shared.pending);
    if (overflow) {
      shared.counts.dropped += pending.size();
      pending.clear();
    }
  }
  if (overflow) /* what was sent until now is the overflow's: not sent again when asked later */
    shared.history.clear();
  if (!pending.empty()) {
    shared.history.set_budget_kbps(shared.budget_kbps.load());
    std::vector<GstBuffer *> copies;
    std::vector<std::pair<std::uint32_t, std::uint16_t>> waiting; /* over budget: at the next packet */
    std::uint64_t given_up_count = 0;
    for (const auto &[ssrc, seq] : pending) {
      GstBuffer *copy = nullptr;
      bool given_up = false;
      const ResendVerdict verdict = shared.history.request(ssrc, seq, now_us, &copy, &given_up);
      if (verdict == ResendVerdict::Resend)
        copies.push_back(copy);
      else if (verdict == ResendVerdict::OverBudget)
        waiting.emplace_back(ssrc, seq);
      else
        GST_LOG("retransmission of #%u (SSRC %08x): %s", seq, ssrc, resend_verdict_name(verdict));
      given_up_count += given_up ? 1 : 0;
    }
    {
      std::lock_guard<std::mutex> lk(shared.lock);
      shared.counts.resent += copies.size();
      shared.counts.unrepaired += given_up_count;
      /* before the requests that came meanwhile; the same packet asked again is TooSoon then */
      if (shared.pending.size() + waiting.size() <= kMaxPending)
        shared.pending.insert(shared.pending.begin(), waiting.begin(), waiting.end());
    }
    pushing_copy = true;
    for (GstBuffer *copy : copies)
      gst_pad_push(pad, copy);
    pushing_copy = false;
  }
  if (GST_PAD_PROBE_INFO_TYPE(info) & GST_PAD_PROBE_TYPE_BUFFER) {
    shared.history.sent(GST_PAD_PROBE_INFO_BUFFER(info), now_us);
  } else if (GST_PAD_PROBE_INFO_TYPE(info) & GST_PAD_PROBE_TYPE_BUFFER_LIST) {
    GstBufferList *list = GST_PAD_PROBE_INFO_BUFFER_LIST(info);
    for (guint i = 0; list && i < gst_buffer_list_length(list); ++i)
      shared.history.sent(gst_buffer_list_get(list, i), now_us);
  }
  return GST_PAD_PROBE_OK;
}

void delete_shared(gpointer data) { delete static_cast<std::shared_ptr<RtpRetransmitter::Shared> *>(data); }
}  // namespace

RtpRetransmitter::RtpRetransmitter(RetransmitLimits limits) : shared_(std::make_shared<Shared>(limits)) {}

RtpRetransmitter::~RtpRetransmitter() { detach(); }

void RtpRetransmitter::attach(GstPad *pad) {
  detach();
  if (!pad)
    return;
  pad_ = GST_PAD(gst_object_ref(pad));
  event_probe_ = gst_pad_add_probe(pad_, GST_PAD_PROBE_TYPE_EVENT_UPSTREAM, on_upstream_event,
                                   new std::shared_ptr<Shared>(shared_), delete_shared);
  data_probe_ = gst_pad_add_probe(pad_, static_cast<GstPadProbeType>(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST),
                                  on_data, new std::shared_ptr<Shared>(shared_), delete_shared);
}

void RtpRetransmitter::detach() {
  if (pad_) {
    if (event_probe_)
      gst_pad_remove_probe(pad_, event_probe_);
    if (data_probe_)
      gst_pad_remove_probe(pad_, data_probe_);
    gst_object_unref(pad_);
  }
  pad_ = nullptr;
  event_probe_ = data_probe_ = 0;
}

void RtpRetransmitter::set_budget_kbps(int kbps) { shared_->budget_kbps.store(kbps); }

void RtpRetransmitter::set_overflow(bool overflow) { shared_->overflow.store(overflow); }

void RtpRetransmitter::forget() { shared_->forget.store(true); }

RetransmitCounts RtpRetransmitter::counts() const {
  std::lock_guard<std::mutex> lk(shared_->lock);
  return shared_->counts;
}

namespace {
void on_deep_element_added(GstBin *, GstBin *, GstElement *element, gpointer) {
  GstElementFactory *factory = gst_element_get_factory(element);
  if (!factory || !g_str_equal(GST_OBJECT_NAME(factory), "srtpenc"))
    return;
  GObjectClass *klass = G_OBJECT_GET_CLASS(element);
  if (g_object_class_find_property(klass, "allow-repeat-tx"))
    g_object_set(element, "allow-repeat-tx", TRUE, nullptr);
  if (g_object_class_find_property(klass, "replay-window-size"))
    g_object_set(element, "replay-window-size", kSrtpReplayWindow, nullptr);
}

void allow_repeat_in(GstElement *element) {
  if (!GST_IS_BIN(element)) {
    on_deep_element_added(nullptr, nullptr, element, nullptr);
    return;
  }
  GstIterator *it = gst_bin_iterate_recurse(GST_BIN(element));
  GValue item = G_VALUE_INIT;
  bool done = false;
  while (!done) {
    switch (gst_iterator_next(it, &item)) {
    case GST_ITERATOR_OK:
      on_deep_element_added(nullptr, nullptr, GST_ELEMENT(g_value_get_object(&item)), nullptr);
      g_value_reset(&item);
      break;
    case GST_ITERATOR_RESYNC: gst_iterator_resync(it); break;
    default: done = true; break;
    }
  }
  g_value_unset(&item);
  gst_iterator_free(it);
}
}  // namespace

gulong allow_repeated_srtp(GstElement *webrtcbin) {
  const gulong id = g_signal_connect(webrtcbin, "deep-element-added", G_CALLBACK(on_deep_element_added), nullptr);
  allow_repeat_in(webrtcbin);
  return id;
}

}  // namespace gstmtx
