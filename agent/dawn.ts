import { create, globals } from 'webgpu';
import { adapterInfo } from '../client/gpu/device';
import type { AdapterInfo } from '../shared/protocol';

/**
 * WebGPU in Node through Dawn (the `webgpu` package): the same API the
 * browser has, so the page's kernels and host code run unchanged. Dawn finds
 * GPUs through the system's Vulkan (Linux), D3D12 (Windows) or Metal (macOS).
 */
export function createNodeGpu(flags: string[] = []): GPU {
  // Host code refers to GPUBufferUsage, GPUMapMode, … as globals, as in a browser.
  Object.assign(globalThis, globals);
  return create(flags) as GPU;
}

export const NO_ADAPTER_HELP = `No WebGPU adapter was found.
  - NVIDIA: install the proprietary driver (it ships the Vulkan ICD); check with \`vulkaninfo --summary\`.
  - AMD / Intel: install Mesa's Vulkan drivers (Debian/Ubuntu: apt-get install mesa-vulkan-drivers).
  - In a container: pass the GPU through (--gpus all, or /dev/dri) and install the driver's Vulkan ICD inside.
  - Testing without a GPU: Chromium's SwiftShader works as a (slow) CPU device:
      LD_LIBRARY_PATH=/usr/lib/chromium VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json`;

/** Adapters Dawn offers for each power preference and the fallback adapter, without duplicates. */
export async function listAdapters(gpu: GPU): Promise<AdapterInfo[]> {
  const seen = new Map<string, AdapterInfo>();
  for (const options of [{ powerPreference: 'high-performance' }, { powerPreference: 'low-power' }, { forceFallbackAdapter: true }] as GPURequestAdapterOptions[]) {
    const adapter = await gpu.requestAdapter(options).catch(() => null);
    if (!adapter) continue;
    const info = adapterInfo(adapter);
    seen.set(JSON.stringify(info), info);
  }
  return [...seen.values()];
}
