/* Unit tests of gstmtx::StallWatchdog (gst/stall_watchdog.h): the stall policy reconnectbin uses. */
#include <gst/check/gstcheck.h>

#include "stall_watchdog.h"

using namespace gstmtx;
using namespace std::chrono_literals;
using TimePoint = StallWatchdog::Clock::time_point;

static TimePoint at(long ms) { return TimePoint{} + std::chrono::milliseconds(1000000 + ms); }

GST_START_TEST(test_watchdog_disabled_and_disarmed) {
  StallWatchdog off(0ms);
  off.arm(at(0), false);
  fail_if(off.stalled(at(100000)));
  fail_unless_equals_int(off.time_left(at(0)).count(), -1);

  StallWatchdog dog(100ms);
  fail_if(dog.armed());
  fail_if(dog.stalled(at(100000)), "an unarmed watchdog never fires");
  dog.arm(at(0), false);
  dog.disarm();
  fail_if(dog.stalled(at(100000)));
}
GST_END_TEST;

GST_START_TEST(test_watchdog_source_stalls) {
  StallWatchdog dog(100ms);
  dog.arm(at(0), false);
  fail_if(dog.stalled(at(99)), "the timeout counts from arming");
  fail_unless(dog.stalled(at(100)), "a source that never produced stalls");
  dog.arm(at(200), false);
  dog.note_output(at(250));
  fail_if(dog.stalled(at(349)));
  fail_unless_equals_int(dog.time_left(at(300)).count(), 50);
  fail_unless(dog.stalled(at(350)));
  fail_unless_equals_int(dog.time_left(at(400)).count(), 0);
  /* output noted before arming does not count against a new run */
  dog.note_output(at(1000));
  dog.arm(at(2000), false);
  fail_if(dog.stalled(at(2050)));
}
GST_END_TEST;

GST_START_TEST(test_watchdog_filter_starved_is_not_stalled) {
  StallWatchdog dog(100ms);
  dog.arm(at(0), true);
  fail_if(dog.stalled(at(500)), "no input: starved, not stalled");
  dog.note_input(at(510));
  fail_unless(dog.stalled(at(520)), "input without output for the timeout is a stall");
  dog.note_output(at(530));
  fail_if(dog.stalled(at(700)), "output after the last input: waiting for upstream");
  dog.note_input(at(700));
  fail_if(dog.stalled(at(629)));
  fail_unless(dog.stalled(at(701)));
}
GST_END_TEST;

GST_START_TEST(test_watchdog_timeout_change) {
  StallWatchdog dog(1000ms);
  dog.arm(at(0), false);
  fail_if(dog.stalled(at(500)));
  dog.set_timeout(400ms);
  fail_unless(dog.stalled(at(500)));
  fail_unless_equals_int(dog.timeout().count(), 400);
}
GST_END_TEST;

static Suite *stall_watchdog_suite(void) {
  Suite *s = suite_create("stall_watchdog");
  TCase *tc = tcase_create("policy");
  tcase_add_test(tc, test_watchdog_disabled_and_disarmed);
  tcase_add_test(tc, test_watchdog_source_stalls);
  tcase_add_test(tc, test_watchdog_filter_starved_is_not_stalled);
  tcase_add_test(tc, test_watchdog_timeout_change);
  suite_add_tcase(s, tc);
  return s;
}

GST_CHECK_MAIN(stall_watchdog);
