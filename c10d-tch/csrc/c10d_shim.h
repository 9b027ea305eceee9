// The C interface of c10d_shim.cpp, declared again in src/ffi.rs.
#pragma once

#include <stdint.h>

#ifdef __cplusplus
namespace at {
class Tensor;
}
typedef at::Tensor* tensor;
extern "C" {
#else
typedef void* tensor;
#endif

typedef void* c10d_group;

void c10d_free_string(char* s);
int c10d_group_new(const char* host, int port, const char* prefix, int rank, int world,
                   int is_server, int64_t timeout_ms, int kind, int device, c10d_group* out,
                   char** err);
void c10d_group_free(c10d_group g);
int c10d_broadcast(c10d_group g, tensor* ts, int n, int root, char** err);
int c10d_allreduce_mean(c10d_group g, tensor* ts, int n, char** err);
int c10d_barrier(c10d_group g, char** err);
int c10d_sync_batch_norm(c10d_group g, tensor x, tensor weight, tensor bias, tensor running_mean,
                         tensor running_var, double momentum, double eps, tensor* out, char** err);

#ifdef __cplusplus
}
#endif
