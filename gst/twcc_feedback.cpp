#include "twcc_feedback.h"

namespace gstmtx {

bool twcc_packets_from_structure(const GstStructure *s, std::vector<TwccPacket> *out) {
  if (!s || !gst_structure_has_name(s, kTwccPacketsEvent))
    return false;
  const GValue *packets = gst_structure_get_value(s, "packets");
  G_GNUC_BEGIN_IGNORE_DEPRECATIONS /* rtpsession uses a GValueArray (1.22 to 1.26) */
  if (!packets || !G_VALUE_HOLDS(packets, g_value_array_get_type()))
    return false;
  auto *array = static_cast<GValueArray *>(g_value_get_boxed(packets));
  for (guint i = 0; array && i < array->n_values; ++i) {
    const GValue *v = g_value_array_get_nth(array, i);
    if (!v || !GST_VALUE_HOLDS_STRUCTURE(v))
      continue;
    const GstStructure *p = gst_value_get_structure(v);
    guint seqnum = 0, size = 0;
    guint64 local = GST_CLOCK_TIME_NONE, remote = GST_CLOCK_TIME_NONE;
    gboolean lost = FALSE;
    if (!p || !gst_structure_get_uint(p, "seqnum", &seqnum) || seqnum > G_MAXUINT16 ||
        !gst_structure_get_uint64(p, "local-ts", &local) || !GST_CLOCK_TIME_IS_VALID(local))
      continue;
    gst_structure_get_uint64(p, "remote-ts", &remote);
    gst_structure_get_boolean(p, "lost", &lost);
    gst_structure_get_uint(p, "size", &size);
    TwccPacket packet;
    packet.seq = static_cast<std::uint16_t>(seqnum);
    packet.send_us = static_cast<std::int64_t>(local / 1000);
    packet.arrival_us = !lost && GST_CLOCK_TIME_IS_VALID(remote) ? static_cast<std::int64_t>(remote / 1000) : -1;
    packet.size = size;
    out->push_back(packet);
  }
  G_GNUC_END_IGNORE_DEPRECATIONS
  return true;
}

namespace {
/* rtpsession's RTCP thread */
GstPadProbeReturn on_upstream_event(GstPad *, GstPadProbeInfo *info, gpointer data) {
  GstEvent *event = GST_PAD_PROBE_INFO_EVENT(info);
  if (!event || GST_EVENT_TYPE(event) != GST_EVENT_CUSTOM_UPSTREAM)
    return GST_PAD_PROBE_OK;
  std::vector<TwccPacket> packets;
  if (!twcc_packets_from_structure(gst_event_get_structure(event), &packets))
    return GST_PAD_PROBE_OK;
  auto &shared = **static_cast<std::shared_ptr<TwccFeedbackTap::Shared> *>(data);
  TwccEstimate estimate;
  {
    std::lock_guard<std::mutex> lk(shared.lock);
    shared.estimator.add(packets);
    shared.messages++;
    estimate = shared.estimator.estimate();
  }
  std::lock_guard<std::mutex> lk(shared.listener_lock);
  if (shared.listener)
    shared.listener(estimate);
  return GST_PAD_PROBE_OK;
}
}  // namespace

TwccFeedbackTap::TwccFeedbackTap() : shared_(std::make_shared<Shared>()) {}

TwccFeedbackTap::~TwccFeedbackTap() { detach(); }

void TwccFeedbackTap::attach(GstPad *pad) {
  remove_probe();
  if (!pad)
    return;
  pad_ = GST_PAD(gst_object_ref(pad));
  probe_ = gst_pad_add_probe(pad_, GST_PAD_PROBE_TYPE_EVENT_UPSTREAM, on_upstream_event,
                             new std::shared_ptr<Shared>(shared_),
                             [](gpointer data) { delete static_cast<std::shared_ptr<Shared> *>(data); });
}

void TwccFeedbackTap::detach() {
  set_listener(nullptr);
  remove_probe();
}

void TwccFeedbackTap::remove_probe() {
  if (pad_ && probe_)
    gst_pad_remove_probe(pad_, probe_);
  probe_ = 0;
  if (pad_)
    gst_object_unref(pad_);
  pad_ = nullptr;
}

bool TwccFeedbackTap::read(TwccEstimate *estimate) {
  std::lock_guard<std::mutex> lk(shared_->lock);
  if (shared_->messages == shared_->read_messages)
    return false;
  shared_->read_messages = shared_->messages;
  *estimate = shared_->estimator.estimate();
  return true;
}

void TwccFeedbackTap::set_listener(std::function<void(const TwccEstimate &)> listener) {
  std::lock_guard<std::mutex> lk(shared_->listener_lock);
  shared_->listener = std::move(listener);
}

unsigned long TwccFeedbackTap::messages() const {
  std::lock_guard<std::mutex> lk(shared_->lock);
  return shared_->messages;
}

}  // namespace gstmtx
