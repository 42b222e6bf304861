# darknet evolve — one build. CPU by default.
#   make               bin/darknet (GEMM through OpenBLAS)
#   make OPENBLAS=0    portable GEMM, no OpenBLAS
#   make SANITIZE=1    AddressSanitizer + UndefinedBehaviorSanitizer build (in build-san/)
#   make GPU=1         CUDA backend (cuBLAS) in build-gpu/ (binary build-gpu/bin/darknet);
#                      GPU=1 CUDNN=1 adds cuDNN, in build-cudnn/. CUDA ?= /usr/local/cuda
#   make test          install what the tests need, build, run every test
#   make demo          the main job on Fashion-MNIST (scripts/demo)
#   make demo-classifier  train and validate cfg/fashion-small.cfg briefly
OPENBLAS ?= 1
SANITIZE ?= 0
DEBUG ?= 0
GPU ?= 0
CUDNN ?= 0
CUDA ?= /usr/local/cuda
CUDNN_LIB ?= /usr/local/cuda-13.0/lib

CC ?= cc
CFLAGS_BASE = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Idarknet/include -Idarknet/src -Ievo -pthread
LDLIBS = -lm -lz -lstb -pthread

ifeq ($(GPU)$(CUDNN),11)
  BUILD ?= build-cudnn
else ifeq ($(GPU),1)
  BUILD ?= build-gpu
endif
ifeq ($(SANITIZE),1)
  BUILD ?= build-san
  CFLAGS_OPT = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
  LDFLAGS += -fsanitize=address,undefined
else ifeq ($(DEBUG),1)
  BUILD ?= build-debug
  CFLAGS_OPT = -O0 -g
else
  BUILD ?= build
  CFLAGS_OPT = -O3 -march=native -g
endif
ifeq ($(OPENBLAS),1)
  CFLAGS_BASE += -DDN_OPENBLAS
  LDLIBS += -lopenblas
endif
CU_SRC =
ifeq ($(GPU),1)
  NVCC ?= $(CUDA)/bin/nvcc
  CFLAGS_BASE += -DDN_GPU -DCUDA_API_PER_THREAD_DEFAULT_STREAM -I$(CUDA)/include
  NVCCFLAGS = -O3 -std=c++17 --default-stream per-thread -Idarknet/src -Xcompiler -Wall,-Wextra \
    -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
    -gencode arch=compute_90,code=compute_90
  LDLIBS += -L$(CUDA)/lib64 -Wl,-rpath,$(CUDA)/lib64 -lcudart -lcublas -lstdc++
  CU_SRC = $(wildcard darknet/src/*.cu)
  ifeq ($(CUDNN),1)
    CFLAGS_BASE += -DDN_CUDNN
    LDLIBS += -L$(CUDNN_LIB) -Wl,-rpath,$(CUDNN_LIB) -lcudnn
  endif
endif
CFLAGS ?=
ALL_CFLAGS = $(CFLAGS_BASE) $(CFLAGS_OPT) $(CFLAGS)

BIN ?= $(if $(filter build,$(BUILD)),bin,$(BUILD)/bin)
LIB_SRC = $(wildcard darknet/src/*.c)
CLI_SRC = $(wildcard darknet/cli/*.c)
EVO_SRC = $(wildcard evo/*.c)
TEST_SRC = $(wildcard tests/test_*.c)
TEST_SH = $(wildcard tests/test_*.sh)
LIB_OBJ = $(LIB_SRC:%.c=$(BUILD)/%.o) $(CU_SRC:%.cu=$(BUILD)/%.cu.o)
CLI_OBJ = $(CLI_SRC:%.c=$(BUILD)/%.o)
EVO_OBJ = $(EVO_SRC:%.c=$(BUILD)/%.o)
TEST_BIN = $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
LIB = $(BUILD)/libdarknet-evolve.a
EVO_LIB = $(BUILD)/libevo.a

.PHONY: all test test-run demo demo-classifier clean setup
all: $(BIN)/darknet

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/%.cu.o: %.cu $(wildcard darknet/src/*.h)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(EVO_LIB): $(EVO_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BIN)/darknet: $(CLI_OBJ) $(EVO_LIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $(CLI_OBJ) $(EVO_LIB) $(LIB) $(LDLIBS)

$(BUILD)/tests/%: tests/%.c $(wildcard tests/*.h) $(EVO_LIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests -Ievo $(LDFLAGS) -o $@ $< $(EVO_LIB) $(LIB) $(LDLIBS)

# The upstream oracle: a harness linked against Debian's libdarknet (never a runtime dependency).
$(BUILD)/tests/upstream_harness: tests/oracle/upstream_harness.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -w -I/usr/lib/darknet/include -o $@ $< -L/usr/lib/darknet -Wl,-rpath,/usr/lib/darknet -ldarknet -lm -pthread

setup:
	@scripts/setup

test: setup
	$(MAKE) test-run

HARNESS = $(if $(wildcard tests/oracle/upstream_harness.c),$(BUILD)/tests/upstream_harness)
test-run: $(BIN)/darknet $(TEST_BIN) $(HARNESS)
	@BUILD=$(BUILD) BIN=$(BIN) tests/run_all $(TEST_BIN) $(TEST_SH)

demo: setup $(BIN)/darknet
	@scripts/demo

demo-classifier: setup $(BIN)/darknet
	@scripts/demo-classifier

clean:
	rm -rf build build-san build-debug build-gpu build-cudnn bin

-include $(LIB_SRC:%.c=$(BUILD)/%.d) $(CLI_OBJ:.o=.d) $(EVO_OBJ:.o=.d)
