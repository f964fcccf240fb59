#!/bin/bash
# The benchmarks run on a lent GPU machine in one go (each job in the
# background, all sharing the GPU); results land in $1.
out=${1:-benchmarks/results}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
R="python3 benchmarks/run.py --out-dir $out"
S="python3 benchmarks/iic_sweep.py --workers 4 --threads 1"
T=${T:-360}
timeout $T $R --estimators dec kmeans --datasets usps --name dec_usps_gpu > "$out/log_dec_usps.txt" 2>&1 &
timeout $T $R --estimators dec kmeans --datasets mnist-test --name dec_mnist_test_gpu > "$out/log_dec_mnist.txt" 2>&1 &
timeout $T python3 benchmarks/dim_probe.py --dataset mnist-test --out-dir $out --name dim_probe_mnist_test_gpu > "$out/log_dim_probe.txt" 2>&1 &
for cfg in 'jsd 0 1 0.1' 'infonce 0 1 0.1' 'dv 0 1 0.1' 'jsd 1 0 0.1' 'jsd 0.5 1 0.1' 'jsd 0 1 0'; do
  set -- $cfg
  timeout $T $R --estimators dim-kmeans --datasets mnist-test --seeds 0 \
    --params "{\"estimator\":\"$1\",\"alpha\":$2,\"beta\":$3,\"gamma\":$4}" \
    --name "dim_effects_mnist_test_gpu_$1_a$2_b$3_g$4" > "$out/log_dim_$1_$2_$3_$4.txt" 2>&1 &
done
timeout $T $S --grid perturbations --dataset digits --seeds 0 1 2 --epochs 45 --every 15 --out "$out/iic_perturbations_digits_gpu.json" > "$out/log_pert_digits.txt" 2>&1 &
timeout $T $S --grid perturbations-mnist --dataset mnist-test --seeds 0 1 2 --epochs 10 --every 5 --out "$out/iic_perturbations_mnist_test_gpu.json" > "$out/log_pert_mnist.txt" 2>&1 &
wait
