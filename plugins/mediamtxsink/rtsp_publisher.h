/* gst-mediamtx: the RTSP network half of mediamtxsink: per stream a small leaky queue (so a
 * slow or blocked connection never blocks the camera) into one rtspclientsink.
 *
 * rtspclientsink is used so that it never closes its connection while one of its stream send
 * threads may be writing into it (rtsp_publisher.cpp says how): each attempt's element is
 * built, used once and thrown away, never reconnected in place. */
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <set>

#include <sys/types.h>

#include "publisher.h"
#include "rate_adaptation.h"

namespace mediamtxsink {

class RtspPublisher : public Publisher {
public:
  RtspPublisher(PublisherConfig config, unsigned generation, ConnectedCallback on_connected);
  ~RtspPublisher() override;
  const char *transport_name() const override { return "rtsp"; }
  bool start(GstBin *bin, const std::vector<PublisherStream> &streams, gstmtx::Failure *error) override;
  void stop(GstBin *bin, bool graceful) override;
  void on_message(GstMessage *message) override;
  /* TCP: the send backlog of rtspclientsink's socket (SIOCOUTQ) against the media handed to it;
   * UDP: receiver-report loss. */
  bool read_feedback(gstmtx::RateFeedback *feedback) override;
  bool read_send_backlog(std::uint64_t *written, std::int64_t *backlog) override;

private:
  static void on_deep_element_added(GstBin *bin, GstBin *sub_bin, GstElement *element, gpointer user_data);
  static GstPadProbeReturn on_first_data(GstPad *pad, GstPadProbeInfo *info, gpointer user_data);
  static GstPadProbeReturn drop_media(GstPad *pad, GstPadProbeInfo *info, gpointer user_data);
  static GstPadProbeReturn count_media(GstPad *pad, GstPadProbeInfo *info, gpointer user_data);
  bool find_socket();
  void starve_senders();

  PublisherConfig config_;
  unsigned generation_;
  ConnectedCallback on_connected_;
  GstElement *sink_ = nullptr;            /* rtspclientsink, ref held */
  std::vector<GstElement *> queues_;      /* ref held */
  std::vector<GstPad *> sink_request_pads_;
  gulong deep_added_id_ = 0;
  std::atomic<bool> connected_{false};
  std::atomic<bool> stopping_{false};   /* stop() began: rtspclientsink's warnings are expected */
  std::atomic<bool> broken_{false};     /* a connection warning was turned into this attempt's error */
  std::mutex senders_lock_;
  std::vector<GstPad *> sender_pads_;   /* ref: sink pads of rtspclientsink's internal sinks */
  bool senders_starved_ = false;        /* under senders_lock_: drop probes on sender_pads_ */
  std::mutex close_lock_;
  std::condition_variable close_cond_;
  bool closed_ = false;        /* rtspclientsink finished closing (TEARDOWN answered) or failed */
  bool close_started_ = false; /* rtspclientsink began its CLOSE (progress "close" CONTINUE) */

  /* bandwidth adaptation */
  std::atomic<guint64> bytes_in_{0}; /* media handed to rtspclientsink's senders */
  GstElement *rtpbin_ = nullptr;     /* ref: rtspclientsink's rtpbin (receiver reports) */
  std::mutex rtpbin_lock_;
  /* control thread */
  std::set<ino_t> sockets_before_;   /* this process's sockets before rtspclientsink connected */
  int socket_fd_ = -1;
  ino_t socket_inode_ = 0;
  bool have_last_ = false;
  guint64 last_in_ = 0;
  long last_backlog_ = 0;
  gint64 last_time_us_ = 0;
  double drain_kbps_ = 0;            /* smoothed rate the socket's backlog drains at */
  double sent_kbps_ = 0;             /* smoothed rate written into it */
  ReceiverReportCursor reports_;
};

}  // namespace mediamtxsink
