import type { AdapterInfo, DeviceLimits } from '../../shared/protocol';

export interface GpuHandle {
  device: GPUDevice;
  adapter: AdapterInfo;
  limits: DeviceLimits;
}

export class GpuUnavailableError extends Error {}

function adapterInfo(adapter: GPUAdapter): AdapterInfo {
  const info = adapter.info;
  return {
    vendor: info?.vendor ?? '',
    architecture: info?.architecture ?? '',
    device: info?.device ?? '',
    description: info?.description ?? '',
  };
}

/**
 * Requests a device with the adapter's own storage-buffer limits (the
 * defaults are only the spec's minimums), so the coordinator can send the
 * largest panels this GPU can bind.
 */
export async function acquireGpu(onLost: (reason: string) => void): Promise<GpuHandle> {
  if (!('gpu' in navigator) || !navigator.gpu) {
    throw new GpuUnavailableError('WebGPU is not available in this browser (navigator.gpu is missing)');
  }
  const adapter = await navigator.gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) throw new GpuUnavailableError('WebGPU is present but no GPU adapter was found');
  const wanted = {
    maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
    maxBufferSize: adapter.limits.maxBufferSize,
  };
  const device = await adapter.requestDevice({ label: 'tessera', requiredLimits: wanted });
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
