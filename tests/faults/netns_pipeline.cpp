/* netns-pipeline: one test host of the network fault suite (tests/faults/test_network_faults.cpp).
 *
 * Moves itself into a new, empty network namespace, says so on stdout, waits for "play PIPELINE" on
 * stdin (the test gives the namespace a veth and an address meanwhile, and may start the server
 * once the link exists), then plays the pipeline and reports on stdout, one line each:
 *   netns <pid>                     namespace made
 *   playing
 *   frame <monotonic-us>            a buffer reached the sink pad of the element named "sink"
 *   status <state> <attempt> <reason>   a gst-mediamtx-status element message
 *   shown <monotonic-us> <code-us>  the fakesink named "display" (signal-handoffs=true) rendered a
 *                                   frame; <code-us> is its time code (tests/testbed/frame_stamp.h,
 *                                   top and bottom copies), -1 when either is unreadable (benchmarks: tests/bench/mtx_bench.cpp adapt)
 *   error <text> / eos / critical <text>  (GLib criticals and warnings, whatever their domain)
 * "stats" on stdin answers with one line, "stats <structure>": the "stats" property of the element
 * named "src" (or else "pub", a publisher) plus the summed statistics of every rtpjitterbuffer in the pipeline
 * (jb-pushed, jb-lost, jb-late, jb-rtx-requests, jb-rtx-success: NACKs sent and retransmissions
 * that arrived). Raw frames leaving an element named "stamp" get the capture time drawn in
 * at their top and bottom (frame_stamp.h). It stops the pipeline and exits on "quit" or at the end of stdin, and is killed
 * with its parent (PR_SET_PDEATHSIG), so a failed test leaves no host behind. Times are CLOCK_MONOTONIC, the
 * clock of g_get_monotonic_time() in the test process. */
#include <gst/gst.h>

#include "frame_stamp.h"

#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>

namespace {

std::mutex out_lock;

void say(const std::string &line) {
  std::lock_guard<std::mutex> guard(out_lock);
  fputs(line.c_str(), stdout);
  fputc('\n', stdout);
  fflush(stdout);
}

std::string one_line(const char *text) {
  std::string s = text ? text : "";
  for (char &c : s)
    if (c == '\n' || c == '\r')
      c = ' ';
  return s;
}

/* called from the streaming thread */
GstPadProbeReturn on_buffer(GstPad *, GstPadProbeInfo *info, gpointer) {
  int n = 1;
  if (info->type & GST_PAD_PROBE_TYPE_BUFFER_LIST)
    n = static_cast<int>(gst_buffer_list_length(GST_PAD_PROBE_INFO_BUFFER_LIST(info)));
  const std::string line = "frame " + std::to_string(g_get_monotonic_time());
  for (int i = 0; i < n; ++i)
    say(line);
  return GST_PAD_PROBE_OK;
}

/* called from the streaming thread of the "display" sink, when it renders */
void on_shown(GstElement *, GstBuffer *buffer, GstPad *pad, gpointer) {
  const gint64 now = g_get_monotonic_time();
  guint64 code = 0;
  const bool readable = testbed::read_buffer_stamp(pad, buffer, &code, true);
  say("shown " + std::to_string(now) + " " + (readable ? std::to_string(code) : std::string("-1")));
}

/* called from whichever thread posts the message */
GstBusSyncReply on_message(GstBus *, GstMessage *msg, gpointer) {
  switch (GST_MESSAGE_TYPE(msg)) {
  case GST_MESSAGE_ERROR: {
    GError *err = nullptr;
    gst_message_parse_error(msg, &err, nullptr);
    say("error " + std::string(GST_OBJECT_NAME(GST_MESSAGE_SRC(msg))) + ": " + one_line(err->message));
    g_clear_error(&err);
    break;
  }
  case GST_MESSAGE_EOS:
    say("eos");
    break;
  case GST_MESSAGE_ELEMENT: {
    const GstStructure *s = gst_message_get_structure(msg);
    if (s && gst_structure_has_name(s, "gst-mediamtx-status")) {
      int attempt = 0;
      gst_structure_get_int(s, "attempt", &attempt);
      say("status " + one_line(gst_structure_get_string(s, "state")) + " " + std::to_string(attempt) + " " +
          one_line(gst_structure_get_string(s, "reason")));
    }
    break;
  }
  default:
    break;
  }
  gst_message_unref(msg);
  return GST_BUS_DROP;
}

GLogWriterOutput on_log(GLogLevelFlags level, const GLogField *fields, gsize n_fields, gpointer) {
  if (level & (G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING)) {
    const char *domain = "", *message = "";
    for (gsize i = 0; i < n_fields; ++i) {
      if (g_strcmp0(fields[i].key, "GLIB_DOMAIN") == 0)
        domain = static_cast<const char *>(fields[i].value);
      else if (g_strcmp0(fields[i].key, "MESSAGE") == 0)
        message = static_cast<const char *>(fields[i].value);
    }
    say("critical " + one_line(domain) + ": " + one_line(message));
  }
  return g_log_writer_default(level, fields, n_fields, nullptr);
}

/* called from the main thread, on "stats" */
void report_stats(GstElement *pipeline) {
  GstStructure *stats = nullptr;
  GstElement *src = gst_bin_get_by_name(GST_BIN(pipeline), "src");
  if (!src)
    src = gst_bin_get_by_name(GST_BIN(pipeline), "pub");
  if (src) {
    if (g_object_class_find_property(G_OBJECT_GET_CLASS(src), "stats"))
      g_object_get(src, "stats", &stats, nullptr);
    gst_object_unref(src);
  }
  if (!stats)
    stats = gst_structure_new_empty("stats");
  guint64 pushed = 0, lost = 0, late = 0, requests = 0, success = 0;
  GstIterator *it = gst_bin_iterate_recurse(GST_BIN(pipeline));
  GValue item = G_VALUE_INIT;
  while (gst_iterator_next(it, &item) == GST_ITERATOR_OK) {
    GstElement *e = GST_ELEMENT(g_value_get_object(&item));
    GstElementFactory *factory = gst_element_get_factory(e);
    if (factory && g_str_equal(GST_OBJECT_NAME(factory), "rtpjitterbuffer")) {
      GstStructure *jb = nullptr;
      g_object_get(e, "stats", &jb, nullptr);
      guint64 v;
      if (jb) {
        if (gst_structure_get_uint64(jb, "num-pushed", &v)) pushed += v;
        if (gst_structure_get_uint64(jb, "num-lost", &v)) lost += v;
        if (gst_structure_get_uint64(jb, "num-late", &v)) late += v;
        if (gst_structure_get_uint64(jb, "rtx-count", &v)) requests += v;
        if (gst_structure_get_uint64(jb, "rtx-success-count", &v)) success += v;
        gst_structure_free(jb);
      }
    }
    g_value_reset(&item);
  }
  g_value_unset(&item);
  gst_iterator_free(it);
  gst_structure_set(stats, "jb-pushed", G_TYPE_UINT64, pushed, "jb-lost", G_TYPE_UINT64, lost, "jb-late",
                    G_TYPE_UINT64, late, "jb-rtx-requests", G_TYPE_UINT64, requests, "jb-rtx-success", G_TYPE_UINT64,
                    success, nullptr);
  gchar *text = gst_structure_to_string(stats);
  say("stats " + one_line(text));
  g_free(text);
  gst_structure_free(stats);
}

}  // namespace

int main(int argc, char **argv) {
  if (argc != 1) {
    fprintf(stderr,
            "Usage: %s   (then \"play PIPELINE\" on stdin)\n"
            "Moves into a new network namespace (needs root) and runs the pipeline read from stdin;\n"
            "reports frames at the element named \"sink\", status messages and errors on stdout.\n",
            argv[0]);
    return strcmp(argv[1], "--help") == 0 ? 0 : 2;
  }
  const pid_t parent = getppid();
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent)
    return 1;
  if (unshare(CLONE_NEWNET) != 0) {
    perror("unshare(CLONE_NEWNET)");
    return 1;
  }
  say("netns " + std::to_string(getpid()));
  static char line[16384];
  if (!fgets(line, sizeof line, stdin) || strncmp(line, "play ", 5) != 0)
    return 0;
  const std::string description = one_line(line + 5);

  g_log_writer_default_set_use_stderr(TRUE); /* stdout is for the report lines */
  g_log_set_writer_func(on_log, nullptr, nullptr);
  gst_init(nullptr, nullptr);
  GError *err = nullptr;
  GstElement *pipeline = gst_parse_launch(description.c_str(), &err);
  if (!pipeline || err) {
    say("error cannot parse the pipeline: " + one_line(err ? err->message : "?"));
    g_clear_error(&err);
    return 1;
  }
  GstBus *bus = gst_element_get_bus(pipeline);
  gst_bus_set_sync_handler(bus, on_message, nullptr, nullptr);
  if (GstElement *sink = gst_bin_get_by_name(GST_BIN(pipeline), "sink")) {
    GstPad *pad = gst_element_get_static_pad(sink, "sink");
    gst_pad_add_probe(pad, static_cast<GstPadProbeType>(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST),
                      on_buffer, nullptr, nullptr);
    gst_object_unref(pad);
    gst_object_unref(sink);
  }
  if (GstElement *stamp = gst_bin_get_by_name(GST_BIN(pipeline), "stamp")) {
    GstPad *pad = gst_element_get_static_pad(stamp, "src");
    testbed::attach_stamper(pad, true);
    gst_object_unref(pad);
    gst_object_unref(stamp);
  }
  if (GstElement *display = gst_bin_get_by_name(GST_BIN(pipeline), "display")) {
    g_signal_connect(display, "handoff", G_CALLBACK(on_shown), nullptr);
    gst_object_unref(display);
  }
  if (gst_element_set_state(pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE)
    say("error the pipeline did not start");
  else
    say("playing");
  while (fgets(line, sizeof line, stdin) && strncmp(line, "quit", 4) != 0) {
    if (strncmp(line, "stats", 5) == 0)
      report_stats(pipeline);
  }
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_bus_set_sync_handler(bus, nullptr, nullptr, nullptr);
  gst_object_unref(bus);
  gst_object_unref(pipeline);
  say("stopped");
  return 0;
}
