/* gst-mediamtx: the RTSP network half of mediamtxsink: per stream a small leaky queue (so a
 * slow or blocked connection never blocks the camera) into one rtspclientsink. */
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>

#include "publisher.h"

namespace mediamtxsink {

class RtspPublisher : public Publisher {
public:
  RtspPublisher(PublisherConfig config, unsigned generation, ConnectedCallback on_connected);
  ~RtspPublisher() override;
  const char *transport_name() const override { return "rtsp"; }
  bool start(GstBin *bin, const std::vector<PublisherStream> &streams, gstmtx::Failure *error) override;
  void stop(GstBin *bin, bool graceful) override;
  void on_message(GstMessage *message) override;

private:
  static void on_deep_element_added(GstBin *bin, GstBin *sub_bin, GstElement *element, gpointer user_data);
  static GstPadProbeReturn on_first_data(GstPad *pad, GstPadProbeInfo *info, gpointer user_data);

  PublisherConfig config_;
  unsigned generation_;
  ConnectedCallback on_connected_;
  GstElement *sink_ = nullptr;            /* rtspclientsink, ref held */
  std::vector<GstElement *> queues_;      /* ref held */
  std::vector<GstPad *> sink_request_pads_;
  gulong deep_added_id_ = 0;
  std::atomic<bool> connected_{false};
  std::mutex close_lock_;
  std::condition_variable close_cond_;
  bool closed_ = false; /* rtspclientsink finished closing (TEARDOWN answered) or failed */
};

}  // namespace mediamtxsink
