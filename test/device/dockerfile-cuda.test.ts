// The Docker images cannot be built here; this reads them for what they must do. The CUDA image
// installs ONNX Runtime's CUDA provider on purpose (runs onnxruntime-node's install script with
// ONNXRUNTIME_NODE_INSTALL=true; the project's .npmrc runs no dependency scripts), fails the build
// unless the provider's files are there and its libraries resolve (ldd), and starts with
// --device cuda. Both images copy every source directory the server imports.
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const read = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');
/** Dockerfile instructions with their continuation lines joined. */
function instructions(text: string): string[] {
  return text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
}

describe('docker/Dockerfile.cuda', () => {
  const lines = instructions(read('docker/Dockerfile.cuda'));
  const index = (pattern: RegExp) => lines.findIndex((line) => pattern.test(line));

  it("installs the CUDA provider by running onnxruntime-node's install script on purpose", () => {
    const install = index(/^ENV ONNXRUNTIME_NODE_INSTALL=true$/);
    const ci = index(/^RUN npm ci /);
    expect(install).toBeGreaterThan(-1);
    expect(ci).toBeGreaterThan(install);
    expect(lines[ci]).toMatch(/&& node node_modules\/onnxruntime-node\/script\/install\.js +&&/);
    expect(lines[ci]).toMatch(/test -f "\$ORT_DIR\/libonnxruntime_providers_cuda\.so"/);
    expect(lines[ci]).toMatch(/test -f "\$ORT_DIR\/libonnxruntime_providers_shared\.so"/);
  });

  it("fails the build when the provider's shared libraries do not resolve (ldd)", () => {
    const ldd = lines.find((line) => /^RUN ldd .*libonnxruntime_providers_cuda\.so/.test(line));
    expect(ldd).toBeDefined();
    expect(ldd).toMatch(/not found.*exit 1/);
  });

  it('starts the server with --device cuda on the CUDA runtime with cuDNN', () => {
    expect(lines[0]).toMatch(/^FROM nvidia\/cuda:12\.[0-9.]+-cudnn-runtime-/);
    expect(lines.at(-1)).toBe('ENTRYPOINT ["node", "bin/moe-server.mjs", "serve", "--device", "cuda"]');
  });
});

describe.each(['docker/Dockerfile', 'docker/Dockerfile.cuda'])('%s', (file) => {
  it('copies every source directory the server needs', () => {
    const copied = instructions(read(file))
      .filter((line) => line.startsWith('COPY ') && !line.includes('--from'))
      .map((line) => line.split(/\s+/)[1]);
    const root = readdirSync(new URL('../../', import.meta.url), { withFileTypes: true });
    const sources = root.filter((d) => d.isDirectory() && ['bin', 'server', 'runtime', 'graphs', 'kernels', 'models'].includes(d.name));
    expect(sources.length).toBe(6);
    for (const dir of sources) expect(copied, dir.name).toContain(dir.name);
  });
});
