// batcher.hpp - gathers concurrent callers' inputs into one forward pass.
//
// No thread of its own and no timer thread: the first caller to find no pass
// running becomes the leader, takes up to max_batch queued requests (its own
// among them, oldest first), runs them as one pass and hands leadership on.
// Callers that arrive while a pass runs queue up and form the next batch, so a
// lone caller never waits for company, and under load batches fill by themselves.
// wait_us > 0 lets a leader whose batch is not full wait up to that long (on a
// condition variable, woken as soon as it fills) for more callers: a little
// latency traded for fuller batches, as the host chooses.
#ifndef PETMATTE_BATCHER_HPP
#define PETMATTE_BATCHER_HPP

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <vector>

#include <ATen/ATen.h>

namespace petmatte {

struct BatchRequest {
    at::Tensor input;      // [1, C, H, W] on the model's device, ready to run
    void *device_sync{};   // the device path's per-caller ordering data (cuda_runner.cpp)
    at::Tensor prediction; // out: [1, 1, h, w]
    std::exception_ptr error;
    bool done{false};
    bool counted{true};    // false for warm-up passes: passes() counts the callers' work
};

class Batcher {
public:
    using RunBatch = std::function<void(const std::vector<BatchRequest *> &)>;

    // Returns when req is done (req.prediction set, or req.error). run is called by
    // whichever caller leads, on its own thread, one batch at a time; an exception
    // from it becomes every request's error in that batch.
    void submit(BatchRequest &req, int max_batch, int wait_us, const RunBatch &run) {
        std::unique_lock<std::mutex> lock(mu_);
        queue_.push_back(&req);
        changed_.notify_all(); // a leader waiting to fill its batch counts us
        while (!req.done) {
            if (leading_) {
                changed_.wait(lock);
                continue;
            }
            leading_ = true;
            if (wait_us > 0 && int(queue_.size()) < max_batch) {
                const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(wait_us);
                changed_.wait_until(lock, until, [&] { return int(queue_.size()) >= max_batch; });
            }
            std::vector<BatchRequest *> batch;
            while (!queue_.empty() && int(batch.size()) < max_batch) {
                batch.push_back(queue_.front());
                queue_.pop_front();
            }
            lock.unlock();
            std::exception_ptr error;
            try {
                run(batch);
            } catch (...) {
                error = std::current_exception();
            }
            lock.lock();
            bool counted = false;
            for (BatchRequest *r : batch) {
                if (error) r->error = error;
                r->done = true;
                counted = counted || r->counted;
            }
            if (counted) passes_++;
            leading_ = false;
            changed_.notify_all();
        }
    }

    // Forward passes run through submit for counted requests (one per batch).
    uint64_t passes() {
        std::lock_guard<std::mutex> lock(mu_);
        return passes_;
    }

private:
    std::mutex mu_;
    std::condition_variable changed_;
    std::deque<BatchRequest *> queue_;
    bool leading_{false};
    uint64_t passes_{0};
};

} // namespace petmatte

#endif
