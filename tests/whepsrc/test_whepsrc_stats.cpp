/* whepsrc's `stats` never blocks the application (issue 15, "Done when"): read while the session's
 * webrtcbin is blocked, it returns within 100 ms.
 *
 * How webrtcbin is blocked, for real: webrtcbin runs its operations (get-stats among them) one at
 * a time on its operations thread ("<webrtcbin name>:pc" in 1.22) and replies to a get-stats promise from there, so the promise's
 * change function runs on that thread. The test asks webrtcbin for statistics itself with a
 * promise whose change function waits (up to 3 s) for the test to release it: until then every
 * other operation queued on that webrtcbin, whepsrc's own get-stats included, waits. */
#include <gst/check/gstcheck.h>

#include <pthread.h>

#include <atomic>
#include <string>

#include "mediamtx_server.h"
#include "pipeline_helpers.h"

using namespace testbed;

namespace {

struct Blocker {
  GMutex lock;
  GCond cond;
  bool entered = false, released = false;
  char thread_name[32] = "";
  Blocker() {
    g_mutex_init(&lock);
    g_cond_init(&cond);
  }
  ~Blocker() {
    g_mutex_clear(&lock);
    g_cond_clear(&cond);
  }
  void release() {
    g_mutex_lock(&lock);
    released = true;
    g_cond_broadcast(&cond);
    g_mutex_unlock(&lock);
  }
};

/* The promise's change function: on webrtcbin's operations thread. */
void block_operations(GstPromise *, gpointer data) {
  auto *b = static_cast<Blocker *>(data);
  g_mutex_lock(&b->lock);
  pthread_getname_np(pthread_self(), b->thread_name, sizeof b->thread_name);
  b->entered = true;
  g_cond_broadcast(&b->cond);
  const gint64 until = g_get_monotonic_time() + 3 * G_USEC_PER_SEC;
  while (!b->released && g_cond_wait_until(&b->cond, &b->lock, until)) {
  }
  g_mutex_unlock(&b->lock);
}

void on_deep_element_added(GstBin *, GstBin *, GstElement *element, gpointer data) {
  GstElementFactory *f = gst_element_get_factory(element);
  if (f && g_strcmp0(GST_OBJECT_NAME(f), "webrtcbin") == 0) {
    auto *slot = static_cast<std::atomic<GstElement *> *>(data);
    GstElement *old = slot->exchange(GST_ELEMENT(gst_object_ref(element)));
    if (old)
      gst_object_unref(old);
  }
}

}  // namespace

GST_START_TEST(test_stats_while_webrtcbin_blocked) {
  fail_unless(in_test_namespace());
  MediamtxServer server;
  fail_unless(server.start());
  TestPipeline pub(x264_rtsp_publisher(server, "cam"));
  fail_unless(pub.play());
  fail_unless(server.wait_path_ready("cam", 10000));

  TestPipeline viewer("whepsrc name=src location=" + server.whep_url("cam") +
                          " ! fakesink name=sink sync=false async=false",
                      "sink");
  std::atomic<GstElement *> webrtc{nullptr};
  g_signal_connect(viewer.pipeline, "deep-element-added", G_CALLBACK(on_deep_element_added), &webrtc);
  fail_unless(viewer.play());
  fail_unless(wait_until([&] { return viewer.frames.count() >= 10; }, 15000), "no frames");
  fail_unless(webrtc.load() != nullptr, "no webrtcbin found in whepsrc");

  /* a stats read that webrtcbin answers: the reference */
  gint64 t = g_get_monotonic_time();
  GstStructure *stats = element_stats(viewer.pipeline, "src");
  const gint64 free_ms = (g_get_monotonic_time() - t) / 1000;
  fail_unless(stats != nullptr);
  gst_structure_free(stats);

  Blocker blocker;
  GstPromise *promise = gst_promise_new_with_change_func(block_operations, &blocker, nullptr);
  g_signal_emit_by_name(webrtc.load(), "get-stats", nullptr, promise);
  g_mutex_lock(&blocker.lock);
  const gint64 until = g_get_monotonic_time() + 2 * G_USEC_PER_SEC;
  while (!blocker.entered && g_cond_wait_until(&blocker.cond, &blocker.lock, until)) {
  }
  const bool blocked = blocker.entered;
  g_mutex_unlock(&blocker.lock);
  fail_unless(blocked, "webrtcbin's operations thread never ran the blocking promise");

  t = g_get_monotonic_time();
  stats = element_stats(viewer.pipeline, "src");
  const gint64 blocked_ms = (g_get_monotonic_time() - t) / 1000;
  blocker.release();
  g_print("stats: %" G_GINT64_FORMAT " ms with webrtcbin free, %" G_GINT64_FORMAT
          " ms while its operations thread ('%s') is blocked\n", free_ms, blocked_ms, blocker.thread_name);
  fail_unless(stats != nullptr);
  fail_unless_equals_string(gst_structure_get_string(stats, "state"), "connected");
  gst_structure_free(stats);
  fail_unless(blocked_ms < scaled_ms(100), "reading stats took %" G_GINT64_FORMAT " ms while webrtcbin was blocked",
              blocked_ms);

  gst_promise_unref(promise);
  /* the session is unharmed once webrtcbin is free again */
  const int before = viewer.frames.count();
  fail_unless(wait_until([&] { return viewer.frames.count() >= before + 10; }, 10000), "frames stopped");
  fail_unless(viewer.bus.errors().empty(), "%s", viewer.bus.error_text().c_str());
  g_signal_handlers_disconnect_by_data(viewer.pipeline, &webrtc);
  viewer.stop();
  if (GstElement *w = webrtc.exchange(nullptr))
    gst_object_unref(w);
}
GST_END_TEST;

static Suite *whepsrc_stats_suite(void) {
  Suite *s = suite_create("whepsrc-stats");
  TCase *tc = tcase_create("stats");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_stats_while_webrtcbin_blocked);
  suite_add_tcase(s, tc);
  return s;
}

GST_CHECK_MAIN(whepsrc_stats);
