/* Unit tests of the NACK answer (gst/rtp_retransmission.h): RetransmitHistory's decisions on
 * injected time (copies, spacing, the per-packet limit, age, the budget, sequence-number wrap and
 * jumps, other SSRCs), RtpRetransmitter on a real pad (a request event in, the kept packet out
 * before the next one, the event not passed on) and allow_repeated_srtp on srtpenc elements
 * added before and after, nested. */
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/rtp/rtp.h>

#include "rtp_retransmission.h"

using namespace gstmtx;

namespace {

constexpr std::uint32_t kSsrc = 0x11223344;

GstBuffer *rtp_packet(std::uint16_t seq, std::uint32_t ssrc = kSsrc, guint payload = 1000) {
  GstBuffer *buffer = gst_rtp_buffer_new_allocate(payload, 0, 0);
  GstRTPBuffer rtp = GST_RTP_BUFFER_INIT;
  fail_unless(gst_rtp_buffer_map(buffer, GST_MAP_WRITE, &rtp));
  gst_rtp_buffer_set_ssrc(&rtp, ssrc);
  gst_rtp_buffer_set_seq(&rtp, seq);
  gst_rtp_buffer_set_payload_type(&rtp, 96);
  gst_rtp_buffer_unmap(&rtp);
  return buffer;
}

std::uint16_t seq_of(GstBuffer *buffer) {
  GstRTPBuffer rtp = GST_RTP_BUFFER_INIT;
  fail_unless(gst_rtp_buffer_map(buffer, GST_MAP_READ, &rtp));
  const std::uint16_t seq = gst_rtp_buffer_get_seq(&rtp);
  gst_rtp_buffer_unmap(&rtp);
  return seq;
}

/* sends `count` packets from `first`, one per ms from `start_us` */
void send_run(RetransmitHistory &h, std::uint16_t first, int count, std::int64_t start_us) {
  for (int i = 0; i < count; ++i) {
    GstBuffer *b = rtp_packet(static_cast<std::uint16_t>(first + i));
    h.sent(b, start_us + i * 1000);
    gst_buffer_unref(b);
  }
}

ResendVerdict ask(RetransmitHistory &h, std::uint16_t seq, std::int64_t now_us, bool *given_up = nullptr,
                  std::uint32_t ssrc = kSsrc) {
  GstBuffer *copy = nullptr;
  const ResendVerdict v = h.request(ssrc, seq, now_us, &copy, given_up);
  fail_unless((v == ResendVerdict::Resend) == (copy != nullptr));
  if (copy) {
    fail_unless_equals_int(seq_of(copy), seq);
    gst_buffer_unref(copy);
  }
  return v;
}

}  // namespace

GST_START_TEST(test_resend_spacing_and_limit) {
  RetransmitLimits limits;
  RetransmitHistory h(limits);
  send_run(h, 100, 50, 0);
  bool given_up = true;
  fail_unless(ask(h, 120, 60'000, &given_up) == ResendVerdict::Resend);
  fail_if(given_up);
  /* asked again at once (the same NACK twice, or two in a row): the copy is on its way */
  fail_unless(ask(h, 120, 60'000 + limits.min_spacing_us - 1) == ResendVerdict::TooSoon);
  fail_unless(ask(h, 120, 60'000 + limits.min_spacing_us) == ResendVerdict::Resend);
  fail_unless(ask(h, 120, 60'000 + 2 * limits.min_spacing_us) == ResendVerdict::Resend);
  /* three copies: no more, reported unrepaired once */
  fail_unless(ask(h, 120, 60'000 + 3 * limits.min_spacing_us, &given_up) == ResendVerdict::Exhausted);
  fail_unless(given_up);
  fail_unless(ask(h, 120, 60'000 + 4 * limits.min_spacing_us, &given_up) == ResendVerdict::Exhausted);
  fail_if(given_up);
  /* the others are untouched */
  fail_unless(ask(h, 100, 60'000 + 4 * limits.min_spacing_us) == ResendVerdict::Resend);
  fail_unless(ask(h, 149, 60'000 + 4 * limits.min_spacing_us) == ResendVerdict::Resend);
}
GST_END_TEST;

GST_START_TEST(test_unknown_old_and_other_ssrc) {
  RetransmitLimits limits;
  RetransmitHistory h(limits);
  send_run(h, 1000, 20, 0);
  bool given_up = true;
  fail_unless(ask(h, 999, 30'000, &given_up) == ResendVerdict::Unknown); /* before the first kept */
  fail_if(given_up);
  fail_unless(ask(h, 1020, 30'000) == ResendVerdict::Unknown); /* not sent yet */
  fail_unless(ask(h, 1005, 30'000, nullptr, kSsrc + 1) == ResendVerdict::Unknown);
  /* kept, but sent more than resend_age_us ago: once reported, then not again */
  fail_unless(ask(h, 1003, 3'000 + limits.resend_age_us + 1, &given_up) == ResendVerdict::TooOld);
  fail_unless(given_up);
  fail_unless(ask(h, 1003, 3'000 + limits.resend_age_us + 100'001, &given_up) == ResendVerdict::TooOld);
  fail_if(given_up);
  /* forgotten after keep_us */
  fail_unless(ask(h, 1019, 19'000 + limits.keep_us + 1) == ResendVerdict::Unknown);
  fail_unless_equals_int(h.size(), 0);
}
GST_END_TEST;

GST_START_TEST(test_kept_count_wrap_and_jump) {
  RetransmitLimits limits;
  limits.max_packets = 64;
  RetransmitHistory h(limits);
  /* across the 16-bit wrap: 65500 .. 99 */
  send_run(h, 65500, 136, 0);
  fail_unless_equals_int(h.size(), 64);
  fail_unless(ask(h, 35, 140'000) == ResendVerdict::Unknown); /* the 64 kept are 36 .. 99 */
  fail_unless(ask(h, 36, 140'000) == ResendVerdict::Resend);
  fail_unless(ask(h, 99, 140'000) == ResendVerdict::Resend);
  /* a jump in the numbers (a new payloader offset): the kept ones cannot be found by number */
  send_run(h, 5000, 1, 140'000);
  fail_unless_equals_int(h.size(), 1);
  fail_unless(ask(h, 60, 141'000) == ResendVerdict::Unknown);
  fail_unless(ask(h, 5000, 141'000) == ResendVerdict::Resend);
  /* another SSRC starts again too */
  GstBuffer *b = rtp_packet(5001, kSsrc + 7);
  h.sent(b, 142'000);
  gst_buffer_unref(b);
  fail_unless(ask(h, 5000, 143'000) == ResendVerdict::Unknown);
  fail_unless(ask(h, 5001, 143'000, nullptr, kSsrc + 7) == ResendVerdict::Resend);
  /* not RTP: ignored */
  GstBuffer *junk = gst_buffer_new_allocate(nullptr, 5, nullptr);
  h.sent(junk, 144'000);
  gst_buffer_unref(junk);
  fail_unless_equals_int(h.size(), 1);
}
GST_END_TEST;

GST_START_TEST(test_budget) {
  RetransmitLimits limits;
  RetransmitHistory h(limits);
  send_run(h, 0, 100, 0); /* 1012-byte packets */
  h.set_budget_kbps(1000); /* 125 bytes a ms, a bucket of 40 ms: 5000 bytes, four packets */
  int resent = 0;
  for (std::uint16_t s = 0; s < 20; ++s)
    resent += ask(h, s, 200'000) == ResendVerdict::Resend ? 1 : 0;
  fail_unless_equals_int(resent, 4);
  fail_unless(ask(h, 30, 200'000) == ResendVerdict::OverBudget);
  /* 8 ms later 1000 bytes more: 1952 in the bucket, one packet */
  fail_unless(ask(h, 30, 208'000) == ResendVerdict::Resend);
  fail_unless(ask(h, 31, 208'000) == ResendVerdict::OverBudget);
  /* over budget is not an attempt: asked later, it goes */
  fail_unless(ask(h, 31, 216'000) == ResendVerdict::Resend);
  /* a long pause refills no more than the bucket */
  resent = 0;
  for (std::uint16_t s = 40; s < 60; ++s)
    resent += ask(h, s, 900'000) == ResendVerdict::Resend ? 1 : 0;
  fail_unless_equals_int(resent, 4);
  /* a budget under one packet a bucket still lets one through now and then */
  h.set_budget_kbps(10);
  fail_unless(ask(h, 70, 1'000'000) == ResendVerdict::Resend);
  fail_unless(ask(h, 71, 1'000'000) == ResendVerdict::OverBudget);
  h.set_budget_kbps(0); /* no limit */
  for (std::uint16_t s = 72; s < 99; ++s)
    fail_unless(ask(h, s, 1'000'000) == ResendVerdict::Resend);
}
GST_END_TEST;

GST_START_TEST(test_retransmitter_on_a_pad) {
  GstHarness *h = gst_harness_new("identity");
  gst_harness_set_src_caps_str(h, "application/x-rtp,media=video,clock-rate=90000,encoding-name=H264,payload=96");
  g_autoptr(GstPad) src = gst_element_get_static_pad(h->element, "src");
  RtpRetransmitter rtx;
  rtx.attach(src);
  for (std::uint16_t s = 10; s < 15; ++s)
    fail_unless_equals_int(gst_harness_push(h, rtp_packet(s)), GST_FLOW_OK);
  for (std::uint16_t s = 10; s < 15; ++s) {
    GstBuffer *out = gst_harness_pull(h);
    fail_unless_equals_int(seq_of(out), s);
    gst_buffer_unref(out);
  }
  /* rtpsession's request for #12 (and one for a packet never sent), then the next packet */
  for (guint seq : {12u, 40u})
    fail_unless(gst_harness_push_upstream_event(
        h, gst_event_new_custom(GST_EVENT_CUSTOM_UPSTREAM,
                                gst_structure_new("GstRTPRetransmissionRequest", "seqnum", G_TYPE_UINT, seq, "ssrc",
                                                  G_TYPE_UINT, kSsrc, nullptr))));
  /* served here, not passed upstream */
  GstEvent *up = nullptr;
  while ((up = gst_harness_try_pull_upstream_event(h))) {
    fail_if(gst_event_has_name(up, "GstRTPRetransmissionRequest"));
    gst_event_unref(up);
  }
  fail_unless_equals_int(gst_harness_push(h, rtp_packet(15)), GST_FLOW_OK);
  GstBuffer *copy = gst_harness_pull(h);
  GstBuffer *next = gst_harness_pull(h);
  fail_unless_equals_int(seq_of(copy), 12);
  fail_unless_equals_int(seq_of(next), 15);
  gst_buffer_unref(copy);
  gst_buffer_unref(next);
  fail_unless_equals_int(gst_harness_buffers_in_queue(h), 0);
  /* the bottleneck overflowing: the request is dropped, and stays so after */
  rtx.set_overflow(true);
  fail_unless(gst_harness_push_upstream_event(
      h, gst_event_new_custom(GST_EVENT_CUSTOM_UPSTREAM,
                              gst_structure_new("GstRTPRetransmissionRequest", "seqnum", G_TYPE_UINT, 14u, "ssrc",
                                                G_TYPE_UINT, kSsrc, nullptr))));
  fail_unless_equals_int(gst_harness_push(h, rtp_packet(16)), GST_FLOW_OK);
  next = gst_harness_pull(h);
  fail_unless_equals_int(seq_of(next), 16);
  gst_buffer_unref(next);
  fail_unless_equals_int(gst_harness_buffers_in_queue(h), 0);
  rtx.set_overflow(false);
  fail_unless_equals_int(gst_harness_push(h, rtp_packet(17)), GST_FLOW_OK);
  next = gst_harness_pull(h);
  fail_unless_equals_int(seq_of(next), 17);
  gst_buffer_unref(next);
  fail_unless_equals_int(gst_harness_buffers_in_queue(h), 0);
  /* asked again once it has room: forgotten (the overflow's); one sent after the overflow is not */
  for (guint seq : {14u, 17u})
    fail_unless(gst_harness_push_upstream_event(
        h, gst_event_new_custom(GST_EVENT_CUSTOM_UPSTREAM,
                                gst_structure_new("GstRTPRetransmissionRequest", "seqnum", G_TYPE_UINT, seq, "ssrc",
                                                  G_TYPE_UINT, kSsrc, nullptr))));
  fail_unless_equals_int(gst_harness_push(h, rtp_packet(18)), GST_FLOW_OK);
  copy = gst_harness_pull(h);
  next = gst_harness_pull(h);
  fail_unless_equals_int(seq_of(copy), 17);
  fail_unless_equals_int(seq_of(next), 18);
  gst_buffer_unref(copy);
  gst_buffer_unref(next);
  /* forgotten (a keyframe follows): what was sent is not sent again */
  rtx.forget();
  fail_unless_equals_int(gst_harness_push(h, rtp_packet(19)), GST_FLOW_OK);
  fail_unless(gst_harness_push_upstream_event(
      h, gst_event_new_custom(GST_EVENT_CUSTOM_UPSTREAM,
                              gst_structure_new("GstRTPRetransmissionRequest", "seqnum", G_TYPE_UINT, 17u, "ssrc",
                                                G_TYPE_UINT, kSsrc, nullptr))));
  fail_unless_equals_int(gst_harness_push(h, rtp_packet(20)), GST_FLOW_OK);
  fail_unless_equals_int(gst_harness_buffers_in_queue(h), 2);
  for (std::uint16_t s : {19, 20}) {
    next = gst_harness_pull(h);
    fail_unless_equals_int(seq_of(next), s);
    gst_buffer_unref(next);
  }
  const RetransmitCounts c = rtx.counts();
  fail_unless_equals_int(c.requests, 6);
  fail_unless_equals_int(c.resent, 2);
  fail_unless_equals_int(c.dropped, 1);
  fail_unless_equals_int(c.unrepaired, 0);
  rtx.detach();
  gst_harness_teardown(h);
}
GST_END_TEST;

GST_START_TEST(test_allow_repeated_srtp) {
  GstElementFactory *factory = gst_element_factory_find("srtpenc");
  if (!factory) {
    fail("srtpenc is missing (gstreamer1.0-plugins-bad)");
    return;
  }
  gst_object_unref(factory);
  GstElement *outer = gst_bin_new("outer");
  GstElement *before = gst_element_factory_make("srtpenc", "before");
  gst_bin_add(GST_BIN(outer), before);
  allow_repeated_srtp(outer);
  GstElement *inner = gst_bin_new("inner");
  GstElement *after = gst_element_factory_make("srtpenc", "after");
  gst_bin_add(GST_BIN(inner), after);
  gst_bin_add(GST_BIN(outer), inner);
  GstElement *later = gst_element_factory_make("srtpenc", "later");
  gst_bin_add(GST_BIN(inner), later);
  for (GstElement *e : {before, after, later}) {
    gboolean allowed = FALSE;
    guint window = 0;
    g_object_get(e, "allow-repeat-tx", &allowed, "replay-window-size", &window, nullptr);
    fail_unless(allowed, "%s", GST_OBJECT_NAME(e));
    /* a copy of the oldest kept packet must still be inside the sender's window */
    fail_unless(window > RetransmitLimits{}.max_packets, "%s: window %u", GST_OBJECT_NAME(e), window);
  }
  gst_object_unref(outer);
}
GST_END_TEST;

static Suite *rtp_retransmission_suite() {
  Suite *s = suite_create("rtp_retransmission");
  TCase *tc = tcase_create("general");
  suite_add_tcase(s, tc);
  tcase_add_test(tc, test_resend_spacing_and_limit);
  tcase_add_test(tc, test_unknown_old_and_other_ssrc);
  tcase_add_test(tc, test_kept_count_wrap_and_jump);
  tcase_add_test(tc, test_budget);
  tcase_add_test(tc, test_retransmitter_on_a_pad);
  tcase_add_test(tc, test_allow_repeated_srtp);
  return s;
}

GST_CHECK_MAIN(rtp_retransmission)
