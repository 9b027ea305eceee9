// The searcher's binding to libtorch's c10d: a TCPStore rendezvous, a Gloo
// or NCCL process group, the three collectives the data-parallel search and
// training use (broadcast, all-reduce of a list, barrier) and a batch norm
// whose statistics and gradients are reduced over the group.
//
// Compiled against the headers of the libtorch that tch links (the PyPI
// wheel ships c10d's; Gloo's few public headers are vendored under
// third_party/, since the wheel leaves them out). ProcessGroupGloo's own
// members are standard containers and shared pointers, so its layout does
// not depend on Gloo's classes, only on their declarations.
//
// NCCL is compiled in where build.rs found a CUDA libtorch with NCCL's and
// the CUDA runtime's headers (C10D_SHIM_NCCL); ProcessGroupNCCL itself lives
// in libtorch_cuda. Without it, asking for NCCL fails with a message.
//
// Every entry point catches what libtorch throws and hands back the message
// (without c10's backtrace) through `err`, to be freed by c10d_free_string:
// no C++ exception crosses into Rust.

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef C10D_SHIM_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "c10d_shim.h"

namespace {

struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> backend;
  int rank;
  int world;
  // Where the collectives' buffers live: the tensors' own device on Gloo
  // (which stages CUDA tensors itself), the group's GPU on NCCL, which
  // takes CUDA tensors only (so a list of CPU numbers travels there and
  // back).
  std::optional<at::Device> device;
};

char* copy_string(const std::string& s) {
  char* out = static_cast<char*>(std::malloc(s.size() + 1));
  std::memcpy(out, s.c_str(), s.size() + 1);
  return out;
}

// Runs `f`, returning 0, or 1 with the exception's message in `err`.
template <typename F>
int guarded(char** err, F&& f) {
  try {
    f();
    return 0;
  } catch (const c10::Error& e) {
    *err = copy_string(e.what_without_backtrace());
  } catch (const std::exception& e) {
    *err = copy_string(e.what());
  } catch (...) {
    *err = copy_string("an unknown C++ exception");
  }
  return 1;
}

std::vector<at::Tensor> tensor_list(tensor* ts, int n) {
  std::vector<at::Tensor> out;
  out.reserve(n);
  for (int i = 0; i < n; ++i) out.push_back(*ts[i]);
  return out;
}

// The tensors as one contiguous buffer (one collective instead of one per
// tensor, as DDP's buckets do) on the group's device, and back.
at::Tensor flatten(const Group* g, const std::vector<at::Tensor>& ts) {
  std::vector<at::Tensor> flat;
  flat.reserve(ts.size());
  for (const auto& t : ts) flat.push_back(t.detach().reshape({-1}));
  auto out = at::cat(flat);
  return g->device ? out.to(*g->device) : out;
}

void unflatten_into(const at::Tensor& flat, std::vector<at::Tensor>& ts) {
  int64_t offset = 0;
  at::NoGradGuard no_grad;
  for (auto& t : ts) {
    int64_t n = t.numel();
    t.copy_(flat.narrow(0, offset, n).view_as(t));
    offset += n;
  }
}

void allreduce_sum(Group* g, at::Tensor& flat) {
  std::vector<at::Tensor> one{flat};
  g->backend->allreduce(one)->wait();
}

// Batch norm over the whole group's batch (training mode): the per-channel
// sums and counts are all-reduced in the forward pass, the two gradient
// sums in the backward pass, as torch.nn.SyncBatchNorm does.
struct SyncBatchNorm : public torch::autograd::Function<SyncBatchNorm> {
  static at::Tensor forward(
      torch::autograd::AutogradContext* ctx,
      const at::Tensor& x,
      const at::Tensor& weight,
      const at::Tensor& bias,
      at::Tensor running_mean,
      at::Tensor running_var,
      double momentum,
      double eps,
      int64_t group) {
    Group* g = reinterpret_cast<Group*>(group);
    std::vector<int64_t> dims{0, 2, 3};
    int64_t c = x.size(1);
    // On NCCL x is on the group's GPU already (the model runs there).
    auto xd = x.to(at::kDouble);
    auto local_count = x.numel() / c;
    auto stats = at::cat({xd.sum(dims), (xd * xd).sum(dims),
                          at::full({1}, static_cast<double>(local_count), xd.options())});
    allreduce_sum(g, stats);
    double count = stats[2 * c].item<double>();
    auto mean = stats.narrow(0, 0, c) / count;
    auto var = (stats.narrow(0, c, c) / count - mean * mean).clamp_min(0.0);
    auto invstd = (var + eps).rsqrt();
    {
      at::NoGradGuard no_grad;
      if (momentum > 0.0) {
        running_mean.mul_(1.0 - momentum).add_(mean.to(running_mean.scalar_type()) * momentum);
        auto unbiased = var * (count / std::max(count - 1.0, 1.0));
        running_var.mul_(1.0 - momentum).add_(unbiased.to(running_var.scalar_type()) * momentum);
      }
    }
    auto shape = std::vector<int64_t>{1, c, 1, 1};
    auto xhat = (xd - mean.view(shape)) * invstd.view(shape);
    ctx->save_for_backward({xhat, invstd, weight});
    ctx->saved_data["group"] = group;
    ctx->saved_data["count"] = count;
    auto y = xhat;
    if (weight.defined()) y = y * weight.to(at::kDouble).view(shape);
    if (bias.defined()) y = y + bias.to(at::kDouble).view(shape);
    return y.to(x.scalar_type());
  }

  static torch::autograd::variable_list backward(
      torch::autograd::AutogradContext* ctx,
      torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    auto xhat = saved[0], invstd = saved[1], weight = saved[2];
    Group* g = reinterpret_cast<Group*>(ctx->saved_data["group"].toInt());
    double count = ctx->saved_data["count"].toDouble();
    std::vector<int64_t> dims{0, 2, 3};
    int64_t c = xhat.size(1);
    auto dy = grads[0].to(at::kDouble);
    // This rank's share of dL/dbias and dL/dweight; their group sums feed
    // the input's gradient, and the parameters' own gradients stay local
    // (the data-parallel step averages those with the others').
    auto sum_dy = dy.sum(dims);
    auto sum_dy_xhat = (dy * xhat).sum(dims);
    auto both = at::cat({sum_dy, sum_dy_xhat});
    allreduce_sum(g, both);
    auto shape = std::vector<int64_t>{1, c, 1, 1};
    auto mean_dy = (both.narrow(0, 0, c) / count).view(shape);
    auto mean_dy_xhat = (both.narrow(0, c, c) / count).view(shape);
    auto dx = (dy - mean_dy - xhat * mean_dy_xhat) * invstd.view(shape);
    at::Tensor dweight, dbias;
    if (weight.defined()) {
      dx = dx * weight.to(at::kDouble).view(shape);
      dweight = sum_dy_xhat.to(weight.scalar_type());
      dbias = sum_dy.to(weight.scalar_type());
    }
    return {dx.to(grads[0].scalar_type()), dweight, dbias, at::Tensor(), at::Tensor(),
            at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

// Gloo over `store`, or NCCL on `gpu` when one is given.
c10::intrusive_ptr<c10d::Backend> make_backend(const c10::intrusive_ptr<c10d::Store>& store,
                                               int rank, int world,
                                               const std::optional<at::Device>& gpu,
                                               std::chrono::milliseconds timeout) {
  if (!gpu) {
    auto options = c10d::ProcessGroupGloo::Options::create_default(timeout);
    return c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world, options);
  }
#ifdef C10D_SHIM_NCCL
  // A collective that times out (a dead peer) then throws from wait(), which
  // the caller turns into one error message, instead of NCCL's watchdog
  // aborting the process; a value the user set is kept. The group reads it
  // when constructed.
  setenv("TORCH_NCCL_BLOCKING_WAIT", "1", 0);
  c10::cuda::set_device(gpu->index());
  auto options = c10d::ProcessGroupNCCL::Options::create();
  options->timeout = timeout;
  auto backend = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, world, options);
  // Bound to its GPU, its barrier knows the device to use; connected now,
  // a missing peer fails the join, as on Gloo, not the first collective.
  backend->setBoundDeviceId(*gpu);
  backend->eagerConnectSingleDevice(*gpu);
  return backend;
#else
  throw std::runtime_error(
      "NCCL is not compiled into this binary: its libtorch has no CUDA (build.rs found no "
      "libtorch_cuda with NCCL's headers)");
#endif
}

}  // namespace

extern "C" {

void c10d_free_string(char* s) { std::free(s); }

int c10d_group_new(const char* host, int port, const char* prefix, int rank, int world,
                   int is_server, int64_t timeout_ms, int kind, int device, c10d_group* out,
                   char** err) {
  return guarded(err, [&] {
    auto timeout = std::chrono::milliseconds(timeout_ms);
    c10d::TCPStoreOptions opts;
    opts.port = static_cast<std::uint16_t>(port);
    opts.isServer = is_server != 0;
    opts.numWorkers = static_cast<std::size_t>(world);
    opts.waitWorkers = true;
    opts.timeout = timeout;
    auto tcp = c10::make_intrusive<c10d::TCPStore>(std::string(host), opts);
    auto store = c10::make_intrusive<c10d::PrefixStore>(std::string(prefix), tcp);
    // kind 0 is Gloo, 1 NCCL on GPU `device`.
    std::optional<at::Device> gpu;
    if (kind == 1) gpu = at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(device));
    auto backend = make_backend(store, rank, world, gpu, timeout);
    *out = new Group{store, backend, rank, world, gpu};
  });
}

void c10d_group_free(c10d_group g) {
  auto* group = static_cast<Group*>(g);
  // NCCL's communicators are torn down explicitly (its destructor warns
  // otherwise); Gloo has nothing to shut down.
  if (group->device) {
    try {
      group->backend->shutdown();
    } catch (...) {
    }
  }
  delete group;
}

int c10d_broadcast(c10d_group g, tensor* ts, int n, int root, char** err) {
  return guarded(err, [&] {
    auto list = tensor_list(ts, n);
    auto flat = flatten(static_cast<Group*>(g), list);
    std::vector<at::Tensor> one{flat};
    c10d::BroadcastOptions opts;
    opts.rootRank = root;
    static_cast<Group*>(g)->backend->broadcast(one, opts)->wait();
    unflatten_into(flat, list);
  });
}

int c10d_allreduce_mean(c10d_group g, tensor* ts, int n, char** err) {
  return guarded(err, [&] {
    auto* group = static_cast<Group*>(g);
    auto list = tensor_list(ts, n);
    auto flat = flatten(group, list);
    allreduce_sum(group, flat);
    flat.div_(static_cast<double>(group->world));
    unflatten_into(flat, list);
  });
}

int c10d_barrier(c10d_group g, char** err) {
  return guarded(err, [&] { static_cast<Group*>(g)->backend->barrier()->wait(); });
}

int c10d_sync_batch_norm(c10d_group g, tensor x, tensor weight, tensor bias, tensor running_mean,
                         tensor running_var, double momentum, double eps, tensor* out,
                         char** err) {
  return guarded(err, [&] {
    // autograd::Function wants defined tensors: absent ones become ones,
    // zeros and empty statistics (momentum 0 then updates nothing).
    int64_t c = x->size(1);
    auto options = x->options().requires_grad(false);
    auto w = weight ? *weight : at::ones({c}, options);
    auto b = bias ? *bias : at::zeros({c}, options);
    bool running = running_mean && running_var;
    auto rm = running ? *running_mean : at::zeros({c}, options);
    auto rv = running ? *running_var : at::ones({c}, options);
    auto y = SyncBatchNorm::apply(*x, w, b, rm, rv, running ? momentum : 0.0, eps,
                                  reinterpret_cast<int64_t>(g));
    *out = new at::Tensor(y);
  });
}

}  // extern "C"
