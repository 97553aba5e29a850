import type { AdapterInfo, DeviceLimits } from '../../shared/protocol';

export interface GpuHandle {
  device: GPUDevice;
  adapter: AdapterInfo;
  limits: DeviceLimits;
}

export class GpuUnavailableError extends Error {}

export function adapterInfo(adapter: GPUAdapter): AdapterInfo {
  const info = adapter.info;
  return {
    vendor: info?.vendor ?? '',
    architecture: info?.architecture ?? '',
    device: info?.device ?? '',
    description: info?.description ?? '',
  };
}

/**
 * Used by the page's worker (navigator.gpu) and by the headless agent (Dawn's
 * Node binding) alike. Requests a device with the adapter's own storage-buffer
 * and workgroup limits (the defaults are only the spec's minimums), so the
 * coordinator can send the largest panels this GPU can bind and the kernel
 * family can use its larger tiles.
 */
export async function acquireGpu(
  gpu: GPU | undefined,
  onLost: (reason: string) => void,
  options: GPURequestAdapterOptions = { powerPreference: 'high-performance' },
): Promise<GpuHandle> {
  if (!gpu) throw new GpuUnavailableError('WebGPU is not available here (navigator.gpu is missing)');
  const adapter = await gpu.requestAdapter(options);
  if (!adapter) throw new GpuUnavailableError('WebGPU is present but no GPU adapter was found');
  const wanted = {
    maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
    maxBufferSize: adapter.limits.maxBufferSize,
    // Larger workgroup tiles in the matmul family need more than the 16 KiB default.
    maxComputeWorkgroupStorageSize: adapter.limits.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: adapter.limits.maxComputeInvocationsPerWorkgroup,
  };
  // Subgroups enable the shuffle-based matmul; timestamps let benchmarks time the GPU itself.
  const requiredFeatures = (['subgroups', 'timestamp-query'] as const).filter((f) => adapter.features.has(f));
  const device = await adapter.requestDevice({ label: 'tessera', requiredLimits: wanted, requiredFeatures });
  device.lost.then((info) => {
    if (info.reason !== 'destroyed') onLost(info.message || 'device lost');
  });
  return {
    device,
    adapter: adapterInfo(adapter),
    limits: {
      maxStorageBufferBindingSize: device.limits.maxStorageBufferBindingSize,
      maxBufferSize: device.limits.maxBufferSize,
      maxComputeWorkgroupStorageSize: device.limits.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: device.limits.maxComputeInvocationsPerWorkgroup,
    },
  };
}
