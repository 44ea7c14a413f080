/* whep_probe: reads a WHEP endpoint with whepsrc (decoded video and audio) and prints what arrived
 * as one JSON line, for the interop tests driven from Node (tests/interop/test_interop.js).
 *
 *   whep_probe URL [MIN_VIDEO_FRAMES [MIN_AUDIO_BUFFERS [TIMEOUT_MS [POINTS]]]]
 *
 * POINTS "fx,fy;fx,fy..." (fractions of the width and height): the RGB values of the last frame
 * there are reported as "pixels".
 *
 * Stops as soon as both minimums are reached or at the timeout; exits 0 whenever it printed its
 * report (the caller asserts), 2 on bad usage or a pipeline that cannot be built. */
#include <gst/gst.h>
#include <gst/video/video.h>
#include <json-glib/json-glib.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "pipeline_helpers.h"

using namespace testbed;

/* "pixels": [[r, g, b], ...] of vsink's last frame (RGBx) at each "fx,fy" of points */
static void add_pixels(JsonBuilder *json, GstElement *pipeline, char **points) {
  json_builder_set_member_name(json, "pixels");
  json_builder_begin_array(json);
  GstElement *vsink = gst_bin_get_by_name(GST_BIN(pipeline), "vsink");
  GstSample *sample = nullptr;
  g_object_get(vsink, "last-sample", &sample, nullptr);
  gst_object_unref(vsink);
  GstVideoInfo info;
  GstVideoFrame frame;
  if (sample && gst_video_info_from_caps(&info, gst_sample_get_caps(sample)) &&
      gst_video_frame_map(&frame, &info, gst_sample_get_buffer(sample), GST_MAP_READ)) {
    for (char **p = points; *p && **p; ++p) {
      double fx = 0, fy = 0;
      if (sscanf(*p, "%lf,%lf", &fx, &fy) != 2)
        continue;
      const int x = CLAMP(static_cast<int>(fx * GST_VIDEO_FRAME_WIDTH(&frame)), 0, GST_VIDEO_FRAME_WIDTH(&frame) - 1);
      const int y = CLAMP(static_cast<int>(fy * GST_VIDEO_FRAME_HEIGHT(&frame)), 0, GST_VIDEO_FRAME_HEIGHT(&frame) - 1);
      const guint8 *px = static_cast<const guint8 *>(GST_VIDEO_FRAME_PLANE_DATA(&frame, 0)) +
                         y * GST_VIDEO_FRAME_PLANE_STRIDE(&frame, 0) + x * 4;
      json_builder_begin_array(json);
      for (int c = 0; c < 3; ++c)
        json_builder_add_int_value(json, px[c]);
      json_builder_end_array(json);
    }
    gst_video_frame_unmap(&frame);
  }
  if (sample)
    gst_sample_unref(sample);
  json_builder_end_array(json);
}

int main(int argc, char **argv) {
  gst_init(&argc, &argv);
  if (argc < 2 || std::string(argv[1]) == "--help") {
    g_printerr("Usage: %s URL [MIN_VIDEO_FRAMES [MIN_AUDIO_BUFFERS [TIMEOUT_MS [POINTS]]]]\n"
               "Reads URL with whepsrc and prints {video_frames, width, height, video_caps, audio_buffers,\n"
               "audio_caps, audio_rate, errors, first_frame_ms, pixels} as JSON; POINTS \"fx,fy;...\" are\n"
               "where to read the last frame's RGB, as fractions of its width and height.\n", argv[0]);
    return argc < 2 ? 2 : 0;
  }
  const std::string url = argv[1];
  const int min_frames = argc > 2 ? atoi(argv[2]) : 30;
  const int min_audio = argc > 3 ? atoi(argv[3]) : 0;
  const int timeout_ms = argc > 4 ? atoi(argv[4]) : 20000;
  g_auto(GStrv) points = g_strsplit(argc > 5 ? argv[5] : "", ";", -1);

  /* audio=true: the audio_0 pad links to asink when (if) it appears */
  GstElement *pipeline = parse_pipeline(
      "whepsrc name=src audio=" + std::string(min_audio > 0 ? "true" : "false") + " location=" + url +
      " src.video_0 ! queue ! videoconvert ! video/x-raw,format=RGBx ! fakesink name=vsink sync=false async=false" +
      (min_audio > 0 ? " src.audio_0 ! queue ! fakesink name=asink sync=false async=false" : ""));
  if (!pipeline)
    return 2;
  BusWatcher bus(pipeline);
  BufferCounter video, audio;
  video.attach(pipeline, "vsink");
  if (min_audio > 0)
    audio.attach(pipeline, "asink");
  gint64 start = g_get_monotonic_time();
  gint64 first_frame = -1;
  set_state_and_wait(pipeline, GST_STATE_PLAYING);
  wait_until([&] {
    if (first_frame < 0 && video.count() > 0)
      first_frame = g_get_monotonic_time();
    return (video.count() >= min_frames && audio.count() >= min_audio) || !bus.errors().empty();
  }, timeout_ms);

  /* audio rate from the negotiated caps on asink */
  int rate = 0;
  if (min_audio > 0) {
    GstElement *asink = gst_bin_get_by_name(GST_BIN(pipeline), "asink");
    GstPad *pad = gst_element_get_static_pad(asink, "sink");
    if (GstCaps *caps = gst_pad_get_current_caps(pad)) {
      gst_structure_get_int(gst_caps_get_structure(caps, 0), "rate", &rate);
      gst_caps_unref(caps);
    }
    gst_object_unref(pad);
    gst_object_unref(asink);
  }

  g_autoptr(JsonBuilder) json = json_builder_new();
  json_builder_begin_object(json);
  add_pixels(json, pipeline, points);
  json_builder_set_member_name(json, "video_frames");
  json_builder_add_int_value(json, video.count());
  json_builder_set_member_name(json, "width");
  json_builder_add_int_value(json, video.width());
  json_builder_set_member_name(json, "height");
  json_builder_add_int_value(json, video.height());
  json_builder_set_member_name(json, "video_caps");
  json_builder_add_string_value(json, video.caps_name().c_str());
  json_builder_set_member_name(json, "audio_buffers");
  json_builder_add_int_value(json, audio.count());
  json_builder_set_member_name(json, "audio_caps");
  json_builder_add_string_value(json, audio.caps_name().c_str());
  json_builder_set_member_name(json, "audio_rate");
  json_builder_add_int_value(json, rate);
  json_builder_set_member_name(json, "first_frame_ms");
  json_builder_add_int_value(json, first_frame < 0 ? -1 : (first_frame - start) / 1000);
  json_builder_set_member_name(json, "errors");
  json_builder_begin_array(json);
  for (const std::string &e : bus.errors())
    json_builder_add_string_value(json, e.c_str());
  json_builder_end_array(json);
  json_builder_end_object(json);

  g_autoptr(JsonGenerator) gen = json_generator_new();
  g_autoptr(JsonNode) root = json_builder_get_root(json);
  json_generator_set_root(gen, root);
  g_autofree char *text = json_generator_to_data(gen, nullptr);
  g_print("%s\n", text);

  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(pipeline);
  return 0;
}
