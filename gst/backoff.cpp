#include "backoff.h"

#include <algorithm>
#include <cmath>

namespace gstmtx {

Backoff::Backoff(RetryPolicy policy, std::uint64_t seed) : policy_(policy), rng_(seed) {}

bool Backoff::exhausted() const {
  return policy_.max_retries >= 0 && attempts_ >= policy_.max_retries;
}

std::optional<Millis> Backoff::next_delay(Clock::time_point now, Millis at_least) {
  if (exhausted())
    return std::nullopt;
  if (attempts_ == 0)
    outage_started_ = now;

  const double base = static_cast<double>(std::max<Millis::rep>(policy_.initial_delay.count(), 0));
  const double cap = static_cast<double>(std::max<Millis::rep>(policy_.max_delay.count(), 0));
  /* Clamp the exponent so the power never overflows whatever the attempt count. */
  const int exponent = std::min(attempts_, 62);
  double delay = std::min(base * std::pow(std::max(policy_.multiplier, 1.0), exponent), cap);
  /* ... but never much longer than the outage has lasted: a short outage gets short waits */
  const double age = static_cast<double>(std::chrono::duration_cast<Millis>(now - outage_started_).count());
  delay = std::min(delay, std::max(base, age * std::clamp(policy_.outage_fraction, 0.0, 1.0)));

  const double jitter = std::clamp(policy_.jitter, 0.0, 1.0);
  if (jitter > 0.0 && delay > 0.0) {
    std::uniform_real_distribution<double> spread(1.0 - jitter, 1.0 + jitter);
    delay = std::min(delay * spread(rng_), cap);
  }
  const double server_cap = static_cast<double>(std::max<Millis::rep>(policy_.max_server_delay.count(), 0));
  delay = std::max(delay, std::min(static_cast<double>(at_least.count()), server_cap));

  ++attempts_;
  return Millis{static_cast<Millis::rep>(std::llround(delay))};
}

void Backoff::on_delivered() { attempts_ = 0; }

void Backoff::reset() { attempts_ = 0; }

}  // namespace gstmtx
