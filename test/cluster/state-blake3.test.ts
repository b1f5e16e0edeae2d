import { beforeAll, describe, expect, it } from 'vitest';
import { blake3Bytes, blake3Hex, initBlake3, toHex } from '../../cluster/state/blake3.ts';

// From the official BLAKE3 test vectors (BLAKE3-team/BLAKE3, test_vectors/test_vectors.json,
// commit 77b257eee7da5cd608eaf6be8343d3a4c9776af2): input byte i is i % 251; the published
// "hash" is 131 bytes of extended output, of which BLAKE3-256 is the first 32.
const OFFICIAL_VECTORS: ReadonlyArray<readonly [number, string]> = [
  [0, 'af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262'],
  [1, '2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213'],
  [1023, '10108970eeda3eb932baac1428c7a2163b0e924c9a9e25b35bba72b28f70bd11'],
  [1024, '42214739f095a406f3fc83deb889744ac00df831c10daa55189b5d121c855af7'],
  [1025, 'd00278ae47eb27b34faecf67b4fe263f82d5412916c1ffd97c8cb7fb814b8444'],
  [31744, '62b6960e1a44bcc1eb1a611a8d6235b6b4b78f32e7abc4fb4c6cdcce94895c47'],
];

function vectorInput(length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = i % 251;
  return bytes;
}

describe('BLAKE3 (hash-wasm) against the official test vectors', () => {
  beforeAll(async () => {
    await initBlake3();
  });

  for (const [length, expected] of OFFICIAL_VECTORS) {
    it(`hashes ${length} bytes`, () => {
      expect(blake3Hex(vectorInput(length))).toBe(expected);
      expect(toHex(blake3Bytes(vectorInput(length)))).toBe(expected);
    });
  }

  it('hashes a subarray view by its own bytes only', () => {
    const padded = new Uint8Array(1030);
    padded.set(vectorInput(1025), 5);
    expect(blake3Hex(padded.subarray(5, 1030))).toBe(OFFICIAL_VECTORS[4]?.[1]);
  });

  it('never answers from a stale memo', () => {
    const input = vectorInput(53);
    const first = blake3Hex(input);
    expect(blake3Hex(input)).toBe(first);
    input[52] = (input[52] ?? 0) ^ 1;
    const second = blake3Hex(input);
    expect(second).not.toBe(first);
    expect(second).toBe(toHex(blake3Bytes(input)));
    input[52] = (input[52] ?? 0) ^ 1;
    expect(blake3Hex(input)).toBe(first);
  });

  it('hashes strings as UTF-8', () => {
    expect(blake3Hex('é')).toBe(blake3Hex(new Uint8Array([0xc3, 0xa9])));
  });

  it('initialises once however often it is awaited', async () => {
    await Promise.all([initBlake3(), initBlake3()]);
    expect(blake3Hex(new Uint8Array(0))).toBe(OFFICIAL_VECTORS[0]?.[1]);
  });
});
