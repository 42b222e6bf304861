# darknet evolve — one build. CPU by default.
#   make               bin/darknet (GEMM through OpenBLAS)
#   make OPENBLAS=0    portable GEMM, no OpenBLAS
#   make SANITIZE=1    AddressSanitizer + UndefinedBehaviorSanitizer build (in build-san/)
#   make GPU=1         CUDA backend (cuBLAS) in build-gpu/ (binary build-gpu/bin/darknet);
#                      GPU=1 CUDNN=1 adds cuDNN, in build-cudnn/. CUDA ?= /usr/local/cuda,
#                      CUDNN_LIB ?= the first folder holding libcudnn.so* (see below)
#   make MPI=1         with Open MPI (`darknet evolve ... -mpi` under mpirun), in build-mpi/
#                      (combines with the others: build-gpu-mpi/, build-san-mpi/, ...)
#   make EMU=1         the GPU=1 code on the host emulator of CUDA + cuBLAS (tests/gpu_emu;
#                      no CUDA needed), with ASan + UBSan, in build-emu/: one thread per block
#   make EMU=1 EMU_BLOCKS=full  the same with real blocks (THREADS-thread blocks as fibers, real
#                      __syncthreads and warp shuffles; tests/gpu_emu/fibers.c), in build-emu-full/
#   make test-gpu-emu  build both and run tests/test_gpu_emu.sh on each (part of make test)
#   make test-mpi      build the MPI=1 twin and run tests/test_evolve_mpi.sh (part of make test)
#   make test          install what the tests need, build, run every test
#   make test T=WORDS  only the test files whose names contain one of WORDS (no setup)
#   make demo          the main job on Fashion-MNIST (scripts/demo)
#   make demo-classifier  train and validate cfg/fashion-small.cfg briefly
OPENBLAS ?= 1
SANITIZE ?= 0
DEBUG ?= 0
GPU ?= 0
CUDNN ?= 0
EMU ?= 0
EMU_BLOCKS ?= one
MPI ?= 0
CUDA ?= /usr/local/cuda
# cuDNN's library folder: the first of these that holds libcudnn.so* (only looked up for CUDNN=1)
CUDNN_DIRS = $(CUDA)/lib64 $(CUDA)/lib $(wildcard /usr/local/cuda*/lib*) $(wildcard /usr/lib/*-linux-gnu)
CUDNN_LIB ?= $(or $(firstword $(foreach d,$(CUDNN_DIRS),$(if $(wildcard $d/libcudnn.so*),$d))),\
  $(error no libcudnn.so* in $(CUDNN_DIRS): install cuDNN or set CUDNN_LIB=DIR))
ifeq ($(filter one full,$(EMU_BLOCKS)),)
  $(error EMU_BLOCKS=$(EMU_BLOCKS): one (one thread per block) or full (real blocks))
endif

# ---- Build configurations ------------------------------------------------------------------
# A build is made of rows of this table; ROWS picks them from the variables above:
#   EMU=1: emu (+ emu-full with EMU_BLOCKS=full) + san   (GPU, CUDNN, SANITIZE, DEBUG ignored)
#   else:  gpu (+ cudnn) with GPU=1 (CUDNN=1), then one of san (SANITIZE=1), debug (DEBUG=1), opt
#   and:   openblas with OPENBLAS=1 (the default), mpi with MPI=1
# Its folder (unless BUILD= is given) is the .dir of its first row in DIR_ORDER, + -mpi with
# MPI=1. Fields: .dir build folder, .opt optimisation (C and C++), .c compile flags (C),
# .cxx compile flags (C++ of the emulated .cu), .nvcc nvcc flags, .ld link flags, .libs
# libraries, .cu2cpp options of tests/gpu_emu/cu2cpp.
opt.dir         = build
opt.opt         = -O3 -march=native -g

san.dir         = build-san
san.opt         = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
san.ld          = -fsanitize=address,undefined

debug.dir       = build-debug
debug.opt       = -O0 -g

openblas.c      = -DDN_OPENBLAS
openblas.libs   = -lopenblas

gpu.dir         = build-gpu
gpu.c           = -DDN_GPU -DCUDA_API_PER_THREAD_DEFAULT_STREAM -I$(CUDA)/include
gpu.nvcc        = -O3 -std=c++17 --default-stream per-thread -Idarknet/src -Xcompiler -Wall,-Wextra \
                  -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
                  -gencode arch=compute_90,code=compute_90
gpu.libs        = -L$(CUDA)/lib64 -Wl,-rpath,$(CUDA)/lib64 -lcudart -lcublas -lstdc++

cudnn.dir       = build-cudnn
cudnn.c         = -DDN_CUDNN
cudnn.libs      = -L$(CUDNN_LIB) -Wl,-rpath,$(CUDNN_LIB) -lcudnn

emu.dir         = build-emu
emu.c           = -DDN_GPU -DDN_GPU_EMU -DCUDA_API_PER_THREAD_DEFAULT_STREAM -Itests/gpu_emu/include
emu.cxx         = -std=c++17 -Wall -Wextra -Idarknet/src -Itests/gpu_emu/include
emu.libs        = -lstdc++

emu-full.dir    = build-emu-full
emu-full.cxx    = -DGPU_EMU_FULL
emu-full.cu2cpp = --full

mpi.c           = -DDN_MPI $(shell pkg-config --cflags mpi-c)
mpi.libs        = $(shell pkg-config --libs mpi-c)

on = $(filter 1,$($(1)))
ROWS := $(if $(call on,EMU),emu $(if $(filter full,$(EMU_BLOCKS)),emu-full) san,\
          $(if $(call on,GPU),gpu $(if $(call on,CUDNN),cudnn))\
          $(if $(call on,SANITIZE),san,$(if $(call on,DEBUG),debug,opt)))\
        $(if $(call on,OPENBLAS),openblas) $(if $(call on,MPI),mpi)
DIR_ORDER = emu-full emu cudnn gpu san debug opt
field = $(strip $(foreach r,$(ROWS),$($(r).$(1))))
MPI_SUFFIX = $(if $(call on,MPI),-mpi)
BUILD ?= $(firstword $(foreach r,$(DIR_ORDER),$(if $(filter $r,$(ROWS)),$($(r).dir))))$(MPI_SUFFIX)
CFLAGS_OPT := $(call field,opt)
CFLAGS_CONF := $(call field,c)
CXXFLAGS_EMU := $(call field,cxx)
NVCCFLAGS := $(call field,nvcc)
LDFLAGS += $(call field,ld)
LDLIBS_CONF := $(call field,libs)
CU2CPP := tests/gpu_emu/cu2cpp $(call field,cu2cpp)
EMU_ONE_BUILD = $(emu.dir)$(MPI_SUFFIX)
EMU_FULL_BUILD = $(emu-full.dir)$(MPI_SUFFIX)
# ---------------------------------------------------------------------------------------------

CC ?= cc
NVCC ?= $(CUDA)/bin/nvcc
CFLAGS_BASE = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Idarknet/include -Idarknet/src -Ievo -pthread $(CFLAGS_CONF)
LDLIBS = -lm -lz -lstb -pthread $(LDLIBS_CONF)
# the .cu files: nvcc's (GPU=1), or C++ through cu2cpp on the emulator (EMU=1)
CU_SRC = $(if $(filter gpu emu,$(ROWS)),$(wildcard darknet/src/*.cu))
EMU_OBJ = $(if $(filter emu,$(ROWS)),$(patsubst %.c,$(BUILD)/%.o,$(filter-out tests/gpu_emu/test_%.c,$(wildcard tests/gpu_emu/*.c))))
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

ifneq ($(filter emu,$(ROWS)),)
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

HARNESS = $(if $(wildcard tests/oracle/upstream_harness.c),$(BUILD)/tests/upstream_harness)
test-run: $(BIN)/darknet $(TEST_BIN) $(HARNESS)
	@BUILD=$(BUILD) BIN=$(BIN) tests/run_all $(TEST_BIN) $(TEST_SH)

# make test T=WORDS: only the test files (tests/test_*.c, tests/test_*.sh) whose names contain
# one of WORDS, through tests/run_all, without setup; test_gpu_emu.sh and test_evolve_mpi.sh
# run as their stages do (test-gpu-emu, test-mpi: their builds included). Only a T given on
# the command line counts (not one in the environment), and the tests do not see it.
unexport T
T_WORDS := $(if $(filter command line,$(origin T)),$(strip $(T)))
picked = $(strip $(foreach f,$(1),$(if $(strip $(foreach w,$(T_WORDS),$(findstring $w,$(notdir $f)))),$f)))
T_BIN = $(patsubst tests/%.c,$(BUILD)/tests/%,$(call picked,$(TEST_SRC)))
T_SH = $(call picked,$(TEST_SH))
T_STAGES = $(if $(call picked,tests/test_gpu_emu.sh),test-gpu-emu) $(if $(call picked,tests/test_evolve_mpi.sh),test-mpi)
ifeq ($(T_WORDS),)
test: setup
	$(MAKE) test-run
	$(MAKE) test-gpu-emu
	$(MAKE) test-mpi
else
ifneq ($(filter test,$(MAKECMDGOALS)),)
ifeq ($(strip $(T_BIN) $(T_SH) $(T_STAGES)),)
  $(error T=$(T_WORDS): no test file's name contains it (tests/test_*.c, tests/test_*.sh))
endif
endif
test: $(BIN)/darknet $(T_BIN) $(if $(filter %/test_oracle,$(T_BIN)),$(HARNESS))
	$(if $(T_BIN)$(T_SH),@BUILD=$(BUILD) BIN=$(BIN) tests/run_all $(T_BIN) $(T_SH))
	$(if $(filter test-gpu-emu,$(T_STAGES)),$(MAKE) test-gpu-emu T=)
	$(if $(filter test-mpi,$(T_STAGES)),$(MAKE) test-mpi T=)
endif

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

BUILD_DIRS = $(foreach r,$(DIR_ORDER),$($(r).dir))
clean:
	rm -rf $(BUILD_DIRS) $(BUILD_DIRS:%=%-mpi) bin

-include $(LIB_SRC:%.c=$(BUILD)/%.d) $(CLI_OBJ:.o=.d) $(EVO_OBJ:.o=.d) $(EMU_OBJ:.o=.d) \
  $(CU_SRC:%.cu=$(BUILD)/%.cu.d) $(if $(EMU_OBJ),$(BUILD)/tests/gpu_emu/selftest.cu.d)
