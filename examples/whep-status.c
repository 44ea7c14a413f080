/* Embedding gst-mediamtx in a C application: a whepsrc viewer that prints its connection state.
 *
 * Usage: whep-status WHEP_URL [FRAMES [TIMEOUT_S]]
 *
 * Plays WHEP_URL (http://host:8889/path/whep or whep://host/path) with whepsrc into a fakesink,
 * prints every change of state announced by whepsrc's `gst-mediamtx-status` element messages and
 * the `stats` property once a second. Exits 0 once FRAMES frames (default 60) were received, 1 on
 * an error or after TIMEOUT_S seconds (default 60). Build: see examples/meson.build, or
 *   cc whep-status.c -o whep-status $(pkg-config --cflags --libs gstreamer-1.0)
 */
#include <gst/gst.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  GMainLoop *loop;
  GstElement *pipeline;
  GstElement *whepsrc;
  gchar *last_state;
  guint64 frames_wanted;
  guint deadline;
  int exit_code;
} Viewer;

static gboolean on_message(GstBus *bus, GstMessage *message, gpointer user_data) {
  Viewer *viewer = user_data;
  (void)bus;
  switch (GST_MESSAGE_TYPE(message)) {
    case GST_MESSAGE_ELEMENT: {
      const GstStructure *s = gst_message_get_structure(message);
      if (!s || !gst_structure_has_name(s, "gst-mediamtx-status"))
        break;
      const gchar *state = gst_structure_get_string(s, "state");
      if (state && g_strcmp0(state, viewer->last_state) != 0) {
        gint attempt = 0;
        gst_structure_get_int(s, "attempt", &attempt);
        const gchar *reason = gst_structure_get_string(s, "reason");
        g_print("%s: %s (attempt %d, %s) %s\n", GST_OBJECT_NAME(GST_MESSAGE_SRC(message)), state, attempt,
                gst_structure_get_string(s, "transport"), reason ? reason : "");
        g_free(viewer->last_state);
        viewer->last_state = g_strdup(state);
      }
      break;
    }
    case GST_MESSAGE_ERROR: {
      g_autoptr(GError) error = NULL;
      g_autofree gchar *debug = NULL;
      gst_message_parse_error(message, &error, &debug);
      g_print("error from %s: %s\n", GST_OBJECT_NAME(GST_MESSAGE_SRC(message)), error->message);
      g_main_loop_quit(viewer->loop);
      break;
    }
    case GST_MESSAGE_EOS:
      g_print("end of stream\n");
      g_main_loop_quit(viewer->loop);
      break;
    default:
      break;
  }
  return G_SOURCE_CONTINUE;
}

static gboolean every_second(gpointer user_data) {
  Viewer *viewer = user_data;
  GstStructure *stats = NULL;
  guint64 frames = 0;
  g_object_get(viewer->whepsrc, "stats", &stats, NULL);
  if (stats) {
    gst_structure_get_uint64(stats, "frames", &frames);
    g_print("viewer stats: state=%s frames=%" G_GUINT64_FORMAT "\n", gst_structure_get_string(stats, "state"), frames);
    gst_structure_free(stats);
  }
  if (frames >= viewer->frames_wanted) {
    g_print("received %" G_GUINT64_FORMAT " frames: done\n", frames);
    viewer->exit_code = 0;
    g_main_loop_quit(viewer->loop);
  }
  return G_SOURCE_CONTINUE;
}

static gboolean on_timeout(gpointer user_data) {
  Viewer *viewer = user_data;
  g_print("timed out\n");
  viewer->deadline = 0;
  g_main_loop_quit(viewer->loop);
  return G_SOURCE_REMOVE;
}

int main(int argc, char **argv) {
  gst_init(&argc, &argv);
  if (argc < 2 || strcmp(argv[1], "--help") == 0) {
    g_print("Usage: %s WHEP_URL [FRAMES [TIMEOUT_S]]\n", argv[0]);
    return argc < 2 ? 2 : 0;
  }
  Viewer viewer = {0};
  viewer.exit_code = 1;
  viewer.frames_wanted = argc > 2 ? g_ascii_strtoull(argv[2], NULL, 10) : 60;
  guint timeout_s = argc > 3 ? (guint)g_ascii_strtoull(argv[3], NULL, 10) : 60;

  g_autoptr(GError) error = NULL;
  viewer.pipeline = gst_parse_launch("whepsrc name=src audio=false ! videoconvert ! fakesink", &error);
  if (!viewer.pipeline) {
    g_printerr("cannot build the pipeline: %s (is GST_PLUGIN_PATH set to gst-mediamtx's build/plugins?)\n",
               error->message);
    return 1;
  }
  viewer.whepsrc = gst_bin_get_by_name(GST_BIN(viewer.pipeline), "src");
  g_object_set(viewer.whepsrc, "location", argv[1], NULL);

  viewer.loop = g_main_loop_new(NULL, FALSE);
  GstBus *bus = gst_element_get_bus(viewer.pipeline);
  guint watch = gst_bus_add_watch(bus, on_message, &viewer);
  gst_object_unref(bus);
  guint tick = g_timeout_add_seconds(1, every_second, &viewer);
  viewer.deadline = g_timeout_add_seconds(timeout_s, on_timeout, &viewer);

  gst_element_set_state(viewer.pipeline, GST_STATE_PLAYING);
  g_main_loop_run(viewer.loop);
  gst_element_set_state(viewer.pipeline, GST_STATE_NULL);

  g_source_remove(watch);
  g_source_remove(tick);
  if (viewer.deadline)
    g_source_remove(viewer.deadline);
  gst_object_unref(viewer.whepsrc);
  gst_object_unref(viewer.pipeline);
  g_main_loop_unref(viewer.loop);
  g_free(viewer.last_state);
  return viewer.exit_code;
}
