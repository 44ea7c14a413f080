/* reconnectbin's sink side takes buffer lists the way it takes buffers (issue 15, "Done when";
 * plugins/reconnectbin/README.md: upstream buffers are "never blocked, never answered with an
 * error"). A child that fails (identity error-after=N: it errors on its Nth buffer and drops it)
 * is fed from a bare source pad, so the test sees every flow return upstream would see:
 *   - upstream never gets a flow error (every push returns OK);
 *   - the child is restarted;
 *   - what the child did not take is counted in stats buffers-dropped: every buffer pushed either
 *     reached one of the children's sinks or was counted there.
 * Once pushed one buffer at a time, once as lists of 4. */
#include <gst/check/gstcheck.h>

#include <atomic>
#include <string>

#include "pipeline_helpers.h"

using namespace testbed;

namespace {

GstPadProbeReturn count_delivered(GstPad *, GstPadProbeInfo *info, gpointer data) {
  auto *delivered = static_cast<std::atomic<int> *>(data);
  if (info->type & GST_PAD_PROBE_TYPE_BUFFER)
    (*delivered)++;
  else if (info->type & GST_PAD_PROBE_TYPE_BUFFER_LIST)
    *delivered += static_cast<int>(gst_buffer_list_length(GST_PAD_PROBE_INFO_BUFFER_LIST(info)));
  return GST_PAD_PROBE_OK;
}

/* every fakesink of every child instance: count what reaches it */
void on_deep_element_added(GstBin *, GstBin *, GstElement *element, gpointer data) {
  GstElementFactory *f = gst_element_get_factory(element);
  if (!f || g_strcmp0(GST_OBJECT_NAME(f), "fakesink") != 0)
    return;
  GstPad *pad = gst_element_get_static_pad(element, "sink");
  gst_pad_add_probe(pad, static_cast<GstPadProbeType>(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST),
                    count_delivered, data, nullptr);
  gst_object_unref(pad);
}

GstBuffer *test_buffer(int index) {
  GstBuffer *buffer = gst_buffer_new_allocate(nullptr, 64, nullptr);
  GST_BUFFER_PTS(buffer) = static_cast<GstClockTime>(index) * 10 * GST_MSECOND;
  GST_BUFFER_DURATION(buffer) = 10 * GST_MSECOND;
  return buffer;
}

void check_flow_policy(bool lists) {
  const char *what = lists ? "buffer lists" : "single buffers";
  std::atomic<int> delivered{0};
  /* a pipeline with only the bin: its sink pad is fed from the test */
  GstElement *pipeline = gst_pipeline_new("lists");
  GstElement *bin = parse_pipeline("reconnectbin name=r retry-delay=100 max-retry-delay=100 "
                                   "child=\"identity error-after=10 ! fakesink sync=false async=false\"");
  fail_unless(bin != nullptr);
  gst_bin_add(GST_BIN(pipeline), GST_ELEMENT(gst_object_ref(bin)));
  BusWatcher bus(pipeline);
  g_signal_connect(pipeline, "deep-element-added", G_CALLBACK(on_deep_element_added), &delivered);
  /* the first child may be built already */
  GstIterator *it = gst_bin_iterate_recurse(GST_BIN(bin));
  GValue item = G_VALUE_INIT;
  while (gst_iterator_next(it, &item) == GST_ITERATOR_OK) {
    on_deep_element_added(nullptr, nullptr, GST_ELEMENT(g_value_get_object(&item)), &delivered);
    g_value_reset(&item);
  }
  g_value_unset(&item);
  gst_iterator_free(it);
  GstPad *sink = gst_element_get_static_pad(bin, "sink");
  fail_unless(sink != nullptr, "reconnectbin has no sink pad");
  GstPad *feeder = gst_pad_new("feeder", GST_PAD_SRC);
  gst_pad_set_active(feeder, TRUE);
  fail_unless_equals_int(gst_pad_link(feeder, sink), GST_PAD_LINK_OK);
  fail_unless(set_state_and_wait(pipeline, GST_STATE_PLAYING));

  fail_unless(gst_pad_push_event(feeder, gst_event_new_stream_start("reconnectbin-lists")));
  GstCaps *caps = gst_caps_new_empty_simple("application/x-reconnectbin-test");
  gst_pad_push_event(feeder, gst_event_new_caps(caps));
  gst_caps_unref(caps);
  GstSegment segment;
  gst_segment_init(&segment, GST_FORMAT_TIME);
  gst_pad_push_event(feeder, gst_event_new_segment(&segment));

  int pushed = 0, not_ok = 0;
  GstFlowReturn first_bad = GST_FLOW_OK;
  /* about 3 s: each child instance takes 9 buffers then fails, restarts come 100 ms apart */
  for (int round = 0; round < 150; ++round) {
    GstFlowReturn ret;
    if (lists) {
      GstBufferList *list = gst_buffer_list_new();
      for (int i = 0; i < 4; ++i)
        gst_buffer_list_add(list, test_buffer(pushed++));
      ret = gst_pad_push_list(feeder, list);
    } else {
      ret = GST_FLOW_OK;
      for (int i = 0; i < 4; ++i) {
        GstFlowReturn r = gst_pad_push(feeder, test_buffer(pushed++));
        if (r != GST_FLOW_OK && ret == GST_FLOW_OK)
          ret = r;
      }
    }
    if (ret != GST_FLOW_OK) {
      if (!not_ok)
        first_bad = ret;
      ++not_ok;
    }
    g_usleep(20000);
  }
  const guint64 restarts = stats_uint64(pipeline, "r", "restarts");
  const guint64 dropped = stats_uint64(pipeline, "r", "buffers-dropped");
  g_print("%s: %d buffers pushed, %d pushes not OK (first: %s), %" G_GUINT64_FORMAT " restarts, %d delivered, %"
          G_GUINT64_FORMAT " counted as dropped\n",
          what, pushed, not_ok, gst_flow_get_name(first_bad), restarts, delivered.load(), dropped);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  g_signal_handlers_disconnect_by_data(pipeline, &delivered);
  gst_pad_unlink(feeder, sink);
  gst_object_unref(feeder);
  gst_object_unref(sink);
  gst_object_unref(bin);
  const std::string errors = bus.error_text();
  gst_object_unref(pipeline);

  fail_unless(errors.empty(), "%s: error on the bus: %s", what, errors.c_str());
  fail_unless(not_ok == 0, "%s: upstream got %d flow errors (first: %s)", what, not_ok, gst_flow_get_name(first_bad));
  fail_unless(restarts >= 2, "%s: the child was restarted %" G_GUINT64_FORMAT " times", what, restarts);
  fail_unless(dropped > 0, "%s: nothing counted as dropped", what);
  fail_unless(static_cast<guint64>(delivered.load()) + dropped == static_cast<guint64>(pushed),
              "%s: %d pushed, but %d delivered + %" G_GUINT64_FORMAT " counted as dropped", what, pushed,
              delivered.load(), dropped);
}

}  // namespace

GST_START_TEST(test_failing_child_single_buffers) { check_flow_policy(false); }
GST_END_TEST;

GST_START_TEST(test_failing_child_buffer_lists) { check_flow_policy(true); }
GST_END_TEST;

static Suite *reconnectbin_lists_suite(void) {
  Suite *s = suite_create("reconnectbin-lists");
  TCase *tc = tcase_create("flow");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_failing_child_single_buffers);
  tcase_add_test(tc, test_failing_child_buffer_lists);
  suite_add_tcase(s, tc);
  return s;
}

GST_CHECK_MAIN(reconnectbin_lists);
