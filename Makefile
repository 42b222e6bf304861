# darknet evolve — one build. CPU by default.
#   make               bin/darknet (GEMM through OpenBLAS)
#   make OPENBLAS=0    portable GEMM, no OpenBLAS
#   make SANITIZE=1    AddressSanitizer + UndefinedBehaviorSanitizer build (in build-san/)
#   make GPU=1         CUDA backend (cuBLAS) in build-gpu/ (binary build-gpu/bin/darknet);
#                      GPU=1 CUDNN=1 adds cuDNN, in build-cudnn/. CUDA ?= /usr/local/cuda
#   make MPI=1         with Open MPI (`darknet evolve ... -mpi` under mpirun), in build-mpi/
#                      (combines with the others: build-gpu-mpi/, build-san-mpi/, ...)
#   make EMU=1         the GPU=1 code on the host emulator of CUDA + cuBLAS (tests/gpu_emu;
#                      no CUDA needed), with ASan + UBSan, in build-emu/: one thread per block
#   make EMU=1 EMU_BLOCKS=full  the same with real blocks (THREADS-thread blocks as fibers, real
#                      __syncthreads and warp shuffles; tests/gpu_emu/fibers.c), in build-emu-full/
#   make test-gpu-emu  build both and run tests/test_gpu_emu.sh on each (part of make test)
#   make test-mpi      build the MPI=1 twin and run tests/test_evolve_mpi.sh (part of make test)
#   make test          install what the tests need, build, run every test
#   make demo          the main job on Fashion-MNIST (scripts/demo)
#   make demo-classifier  train and validate cfg/fashion-small.cfg briefly
OPENBLAS ?= 1
SANITIZE ?= 0
DEBUG ?= 0
GPU ?= 0
CUDNN ?= 0
EMU ?= 0
MPI ?= 0
MPI_SUFFIX = $(if $(filter 1,$(MPI)),-mpi)
CUDA ?= /usr/local/cuda
CUDNN_LIB ?= /usr/local/cuda-13.0/lib

CC ?= cc
CFLAGS_BASE = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Idarknet/include -Idarknet/src -Ievo -pthread
LDLIBS = -lm -lz -lstb -pthread

EMU_BLOCKS ?= one
ifeq ($(filter one full,$(EMU_BLOCKS)),)
  $(error EMU_BLOCKS=$(EMU_BLOCKS): one (one thread per block) or full (real blocks))
endif
EMU_ONE_BUILD = build-emu$(MPI_SUFFIX)
EMU_FULL_BUILD = build-emu-full$(MPI_SUFFIX)
EMU_BUILD = $(if $(filter full,$(EMU_BLOCKS)),$(EMU_FULL_BUILD),$(EMU_ONE_BUILD))
ifeq ($(EMU),1)
  override GPU = 1
  override CUDNN = 0
  override SANITIZE = 1
  BUILD ?= $(EMU_BUILD)
endif
ifeq ($(GPU)$(CUDNN),11)
  BUILD ?= build-cudnn$(MPI_SUFFIX)
else ifeq ($(GPU),1)
  BUILD ?= build-gpu$(MPI_SUFFIX)
endif
ifeq ($(SANITIZE),1)
  BUILD ?= build-san$(MPI_SUFFIX)
  CFLAGS_OPT = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
  LDFLAGS += -fsanitize=address,undefined
else ifeq ($(DEBUG),1)
  BUILD ?= build-debug$(MPI_SUFFIX)
  CFLAGS_OPT = -O0 -g
else
  BUILD ?= build$(MPI_SUFFIX)
  CFLAGS_OPT = -O3 -march=native -g
endif
ifeq ($(OPENBLAS),1)
  CFLAGS_BASE += -DDN_OPENBLAS
  LDLIBS += -lopenblas
endif
CU_SRC =
EMU_OBJ =
ifeq ($(EMU),1)
  # CUDA's headers and libraries replaced by tests/gpu_emu; the .cu files become C++ (cu2cpp)
  CFLAGS_BASE += -DDN_GPU -DDN_GPU_EMU -DCUDA_API_PER_THREAD_DEFAULT_STREAM -Itests/gpu_emu/include
  CXXFLAGS_EMU = -std=c++17 -Wall -Wextra -Idarknet/src -Itests/gpu_emu/include
  LDLIBS += -lstdc++
  CU_SRC = $(wildcard darknet/src/*.cu)
  EMU_OBJ = $(patsubst %.c,$(BUILD)/%.o,$(filter-out tests/gpu_emu/test_%.c,$(wildcard tests/gpu_emu/*.c)))
  CU2CPP = tests/gpu_emu/cu2cpp
  ifeq ($(EMU_BLOCKS),full)
    CXXFLAGS_EMU += -DGPU_EMU_FULL
    CU2CPP += --full
  endif
else ifeq ($(GPU),1)
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
ifeq ($(MPI),1)
  CFLAGS_BASE += -DDN_MPI $(shell pkg-config --cflags mpi-c)
  LDLIBS += $(shell pkg-config --libs mpi-c)
endif
CFLAGS ?=
ALL_CFLAGS = $(CFLAGS_BASE) $(CFLAGS_OPT) $(CFLAGS)

BIN ?= $(if $(filter build,$(BUILD)),bin,$(BUILD)/bin)
LIB_SRC = $(wildcard darknet/src/*.c)
CLI_SRC = $(wildcard darknet/cli/*.c)
EVO_SRC = $(wildcard evo/*.c)
TEST_SRC = $(wildcard tests/test_*.c)
# tests/test_gpu_emu.sh runs in test-gpu-emu, on the EMU=1 build
TEST_SH = $(filter-out tests/test_gpu_emu.sh tests/test_evolve_mpi.sh,$(wildcard tests/test_*.sh))
LIB_OBJ = $(LIB_SRC:%.c=$(BUILD)/%.o) $(CU_SRC:%.cu=$(BUILD)/%.cu.o) $(EMU_OBJ)
CLI_OBJ = $(CLI_SRC:%.c=$(BUILD)/%.o)
EVO_OBJ = $(EVO_SRC:%.c=$(BUILD)/%.o)
TEST_BIN = $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
LIB = $(BUILD)/libdarknet-evolve.a
EVO_LIB = $(BUILD)/libevo.a

.PHONY: all test test-run test-gpu-emu test-mpi demo demo-classifier clean setup
all: $(BIN)/darknet

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

ifeq ($(EMU),1)
.PRECIOUS: $(BUILD)/%.cu.cpp
$(BUILD)/%.cu.cpp: %.cu tests/gpu_emu/cu2cpp $(wildcard darknet/src/*.cuh)
	@mkdir -p $(dir $@)
	$(CU2CPP) $< $@

$(BUILD)/%.cu.o: $(BUILD)/%.cu.cpp
	$(CXX) $(CXXFLAGS_EMU) $(CFLAGS_OPT) $(CFLAGS) -MMD -MP -c $< -o $@

# the emulator's own test (kernels whose results need real barriers and shuffles), and
# darknet's cooperative kernels at larger sizes (tests/gpu_emu/test_*.c)
$(BUILD)/tests/gpu_emu/selftest: $(BUILD)/tests/gpu_emu/selftest.cu.o $(EMU_OBJ)
	$(CXX) $(CFLAGS_OPT) $(LDFLAGS) -o $@ $^ -pthread

$(BUILD)/tests/gpu_emu/test_%: tests/gpu_emu/test_%.c tests/testlib.h $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)
else
$(BUILD)/%.cu.o: %.cu $(wildcard darknet/src/*.h darknet/src/*.cuh)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -c $< -o $@
endif

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
	$(MAKE) test-gpu-emu
	$(MAKE) test-mpi

HARNESS = $(if $(wildcard tests/oracle/upstream_harness.c),$(BUILD)/tests/upstream_harness)
test-run: $(BIN)/darknet $(TEST_BIN) $(HARNESS)
	@BUILD=$(BUILD) BIN=$(BIN) tests/run_all $(TEST_BIN) $(TEST_SH)

# The GPU code paths without a GPU: the EMU=1 builds (one thread per block, then real blocks)
# and their tests; $(BIN)/darknet is the CPU build that loads what the emulated GPU trained.
EMU_TARGETS = bin/darknet tests/test_gpu tests/gpu_emu/selftest tests/gpu_emu/test_coop
test-gpu-emu: $(BIN)/darknet
	$(MAKE) EMU=1 EMU_BLOCKS=one BUILD=$(EMU_ONE_BUILD) BIN=$(EMU_ONE_BUILD)/bin $(EMU_TARGETS:%=$(EMU_ONE_BUILD)/%)
	$(MAKE) EMU=1 EMU_BLOCKS=full BUILD=$(EMU_FULL_BUILD) BIN=$(EMU_FULL_BUILD)/bin $(EMU_TARGETS:%=$(EMU_FULL_BUILD)/%)
	@EMU_BLOCKS=one BUILD=$(EMU_ONE_BUILD) BIN=$(EMU_ONE_BUILD)/bin CPU_BIN=$(BIN) tests/run_all tests/test_gpu_emu.sh
	@EMU_BLOCKS=full BUILD=$(EMU_FULL_BUILD) BIN=$(EMU_FULL_BUILD)/bin CPU_BIN=$(BIN) tests/run_all tests/test_gpu_emu.sh

# darknet evolve -mpi under mpirun: the MPI=1 twin of this build (build-mpi/, build-san-mpi/, ...),
# the misbehaving rank of its test, and tests/test_evolve_mpi.sh.
MPI_BUILD = $(BUILD)$(if $(filter 1,$(MPI)),,-mpi)
test-mpi: $(BIN)/darknet
	$(MAKE) MPI=1 BUILD=$(MPI_BUILD) BIN=$(MPI_BUILD)/bin $(MPI_BUILD)/bin/darknet $(MPI_BUILD)/tests/mpi_rogue
	@BUILD=$(BUILD) BIN=$(BIN) MPI_BIN=$(MPI_BUILD)/bin tests/run_all tests/test_evolve_mpi.sh

demo: setup $(BIN)/darknet
	@scripts/demo

demo-classifier: setup $(BIN)/darknet
	@scripts/demo-classifier

clean:
	rm -rf build build-san build-debug build-gpu build-cudnn build-emu build-emu-full build-*-mpi build-mpi bin

-include $(LIB_SRC:%.c=$(BUILD)/%.d) $(CLI_OBJ:.o=.d) $(EVO_OBJ:.o=.d) $(EMU_OBJ:.o=.d) \
  $(CU_SRC:%.cu=$(BUILD)/%.cu.d) $(if $(EMU_OBJ),$(BUILD)/tests/gpu_emu/selftest.cu.d)
