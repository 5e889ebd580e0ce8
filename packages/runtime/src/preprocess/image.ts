/**
 * Encoded images (JPEG, PNG, WebP, TIFF) → one input tensor, as a model's ImageInputSpec says: EXIF
 * orientation applied, alpha dropped, grey or RGB/BGR, resized (stretch, letterbox pad, or centre crop),
 * scaled per channel, laid out NCHW or NHWC, in the input's dtype. Decoding runs in libvips on the libuv
 * thread pool, so the calling thread only copies pixels. The header is read first: an image over the pixel
 * limit is refused before a single pixel is decoded (decompression bombs).
 */
import sharp, { type Metadata, type OutputInfo } from 'sharp';
import { type ImageInputSpec, InferrerError, type Tensor, datatypeOfOrt, floatToHalf } from '@inferrer/core';

sharp.cache(false);

export const IMAGE_FORMATS = ['jpeg', 'png', 'webp', 'tiff'] as const;

export interface ImageLimits {
  /** Largest width × height accepted (after the header is read, before decoding). */
  maxPixels: number;
}

export const DEFAULT_IMAGE_LIMITS: ImageLimits = { maxPixels: 50_000_000 };

/** How a model-input pixel maps back to the original (upright) image: orig = (model − pad) / scale. */
export interface ImageTransform {
  /** Original size after EXIF orientation. */
  width: number;
  height: number;
  scaleX: number;
  scaleY: number;
  padX: number;
  padY: number;
}

export interface DecodedImages {
  tensor: Tensor;
  transforms: ImageTransform[];
}

/** Where a model-input box [x1, y1, x2, y2] lies in the original image, clipped to it. */
export function toOriginal(box: readonly number[], t: ImageTransform): [number, number, number, number] {
  const clip = (v: number, hi: number): number => Math.min(hi, Math.max(0, v));
  return [
    clip((box[0]! - t.padX) / t.scaleX, t.width),
    clip((box[1]! - t.padY) / t.scaleY, t.height),
    clip((box[2]! - t.padX) / t.scaleX, t.width),
    clip((box[3]! - t.padY) / t.scaleY, t.height),
  ];
}

/** Resize geometry for one image: the size it is resized to and where it lands in the H×W input. */
export function plan(
  width: number,
  height: number,
  spec: Pick<ImageInputSpec, 'width' | 'height' | 'resize'>,
): { resizeW: number; resizeH: number; left: number; top: number; transform: ImageTransform } {
  const W = spec.width;
  const H = spec.height;
  if (spec.resize === 'stretch') {
    return { resizeW: W, resizeH: H, left: 0, top: 0, transform: { width, height, scaleX: W / width, scaleY: H / height, padX: 0, padY: 0 } };
  }
  const s = spec.resize === 'pad' ? Math.min(W / width, H / height) : Math.max(W / width, H / height);
  const resizeW = Math.max(1, Math.round(width * s));
  const resizeH = Math.max(1, Math.round(height * s));
  // pad: the image sits at (left, top) inside the input; crop: the input is cut at (left, top) of the image.
  const left = Math.floor(Math.abs(W - resizeW) / 2);
  const top = Math.floor(Math.abs(H - resizeH) / 2);
  const sx = resizeW / width;
  const sy = resizeH / height;
  return spec.resize === 'pad'
    ? { resizeW, resizeH, left, top, transform: { width, height, scaleX: sx, scaleY: sy, padX: left, padY: top } }
    : { resizeW, resizeH, left, top, transform: { width, height, scaleX: sx, scaleY: sy, padX: -left, padY: -top } };
}

/** Reads the header only: format, upright size; refuses unknown formats and images over the pixel limit. */
export async function probeImage(
  bytes: Buffer,
  index: number,
  limits: ImageLimits = DEFAULT_IMAGE_LIMITS,
): Promise<{ format: string; width: number; height: number }> {
  let meta: Metadata;
  try {
    meta = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch (err) {
    throw new InferrerError('INVALID_IMAGE', `image ${index} could not be read: ${(err as Error).message}`, { image: index }, { cause: err });
  }
  const format = String(meta.format ?? 'unknown');
  if (!(IMAGE_FORMATS as readonly string[]).includes(format)) {
    throw new InferrerError('INVALID_IMAGE', `image ${index} is ${format}; send JPEG, PNG, WebP or TIFF`, {
      image: index,
      got: format,
      expected: IMAGE_FORMATS,
    });
  }
  const w = meta.width ?? 0;
  const h = meta.height ?? 0;
  if (!(w > 0 && h > 0)) throw new InferrerError('INVALID_IMAGE', `image ${index} has no size in its header`, { image: index });
  if (w * h > limits.maxPixels) {
    throw new InferrerError(
      'IMAGE_TOO_LARGE',
      `image ${index} is ${w}×${h} = ${w * h} pixels, more than the limit of ${limits.maxPixels}; it was not decoded`,
      {
        image: index,
        width: w,
        height: h,
        limit: limits.maxPixels,
      },
    );
  }
  const sideways = (meta.orientation ?? 1) >= 5;
  return { format, width: sideways ? h : w, height: sideways ? w : h };
}

/** Decodes one image into model-input pixels: H×W×C bytes (C = spec.channels, RGB or grey) and its transform. */
export async function decodeImage(
  bytes: Buffer,
  spec: ImageInputSpec,
  index: number,
  limits: ImageLimits = DEFAULT_IMAGE_LIMITS,
): Promise<{ pixels: Buffer; transform: ImageTransform }> {
  const { width, height } = await probeImage(bytes, index, limits);
  const p = plan(width, height, spec);
  const kernel =
    spec.kernel === 'linear'
      ? sharp.kernel.linear
      : spec.kernel === 'nearest'
        ? sharp.kernel.nearest
        : spec.kernel === 'cubic'
          ? sharp.kernel.cubic
          : sharp.kernel.lanczos3;
  let img = sharp(bytes, { limitInputPixels: limits.maxPixels, failOn: 'truncated' }).rotate().removeAlpha();
  img = spec.channels === 1 ? img.toColourspace('b-w') : img.toColourspace('srgb');
  img = img.resize(p.resizeW, p.resizeH, { fit: 'fill', kernel });
  if (spec.resize === 'pad' && (p.resizeW !== spec.width || p.resizeH !== spec.height)) {
    const v = spec.padValue;
    img = img.extend({
      left: p.left,
      top: p.top,
      right: spec.width - p.resizeW - p.left,
      bottom: spec.height - p.resizeH - p.top,
      background: { r: v, g: v, b: v, alpha: 1 },
    });
  } else if (spec.resize === 'crop' && (p.resizeW !== spec.width || p.resizeH !== spec.height)) {
    img = img.extract({ left: p.left, top: p.top, width: spec.width, height: spec.height });
  }
  let out: { data: Buffer; info: OutputInfo };
  try {
    out = await img.raw().toBuffer({ resolveWithObject: true });
  } catch (err) {
    const message = (err as Error).message;
    if (/pixel limit/i.test(message))
      throw new InferrerError('IMAGE_TOO_LARGE', `image ${index} is larger than the pixel limit of ${limits.maxPixels}`, {
        image: index,
        limit: limits.maxPixels,
      });
    throw new InferrerError('INVALID_IMAGE', `image ${index} could not be decoded: ${message}`, { image: index }, { cause: err });
  }
  if (out.info.channels !== spec.channels || out.info.width !== spec.width || out.info.height !== spec.height) {
    throw new InferrerError(
      'INTERNAL',
      `image ${index} decoded to ${out.info.width}×${out.info.height}×${out.info.channels}, not ${spec.width}×${spec.height}×${spec.channels}`,
    );
  }
  return { pixels: out.data, transform: p.transform };
}

/** Decodes every image (concurrently, on libvips threads) into one batch tensor [n, …] for spec.input. */
export async function imagesToTensor(images: readonly Buffer[], spec: ImageInputSpec, limits: ImageLimits = DEFAULT_IMAGE_LIMITS): Promise<DecodedImages> {
  if (images.length === 0) throw new InferrerError('INVALID_REQUEST', 'no images were sent');
  const decoded = await Promise.all(images.map((b, i) => decodeImage(b, spec, i, limits)));
  const { height: H, width: W, channels: C } = spec;
  const per = H * W * C;
  const info = datatypeOfOrt(spec.type);
  if (!info?.array || info.bigint)
    throw new InferrerError(
      'NOT_AN_IMAGE_MODEL',
      `input '${spec.input}' has type ${spec.type}; images feed float32, float64, float16, uint8, int8 or int32 inputs`,
      { input: spec.input, got: spec.type },
    );
  const data = new info.array(per * images.length);
  const round = !info.float;
  const half = spec.type === 'float16';
  const lo = Number(info.min ?? -Infinity);
  const hi = Number(info.max ?? Infinity);
  for (let n = 0; n < decoded.length; n++) {
    const px = decoded[n]!.pixels;
    const base = n * per;
    for (let c = 0; c < C; c++) {
      const src = spec.order === 'bgr' ? C - 1 - c : c;
      const a = spec.scale[c] ?? 1;
      const b = spec.offset[c] ?? 0;
      for (let i = 0; i < H * W; i++) {
        let v = px[i * C + src]! * a + b;
        if (round) v = Math.min(hi, Math.max(lo, Math.round(v)));
        const at = spec.layout === 'NCHW' ? base + c * H * W + i : base + i * C + c;
        data[at] = half ? floatToHalf(v) : v;
      }
    }
  }
  const dims = spec.layout === 'NCHW' ? [images.length, C, H, W] : [images.length, H, W, C];
  return { tensor: { type: spec.type, dims, data }, transforms: decoded.map((d) => d.transform) };
}
