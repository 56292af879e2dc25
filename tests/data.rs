//! The data readers on small files written here in each format, their errors
//! on bad files, and the embedded subset.

use std::io::Write;
use std::path::Path;

use pada::data::DataSpec;

fn idx_bytes(magic_dims: u8, dims: &[u32], payload: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 0x08, magic_dims];
    for d in dims {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b.extend_from_slice(payload);
    b
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// An MNIST-style directory: `n_train` and `n_test` 28x28 images.
fn write_idx_dir(dir: &Path, n_train: u32, n_test: u32, gzip: bool) {
    for (stem, n) in [("train", n_train), ("t10k", n_test)] {
        let px: Vec<u8> = (0..n * 784).map(|i| (i % 251) as u8).collect();
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        let files = [
            (format!("{stem}-images-idx3-ubyte"), idx_bytes(3, &[n, 28, 28], &px)),
            (format!("{stem}-labels-idx1-ubyte"), idx_bytes(1, &[n], &labels)),
        ];
        for (name, bytes) in files {
            if gzip {
                std::fs::write(dir.join(format!("{name}.gz")), gz(&bytes)).unwrap();
            } else {
                std::fs::write(dir.join(name), bytes).unwrap();
            }
        }
    }
}

fn load_err(spec: &str) -> String {
    format!("{:#}", spec.parse::<DataSpec>().unwrap().load().unwrap_err())
}

#[test]
fn idx_directories_gzipped_or_not() {
    for gzip in [false, true] {
        let d = tempfile::tempdir().unwrap();
        write_idx_dir(d.path(), 30, 12, gzip);
        for kind in ["mnist", "fashion-mnist"] {
            let data = format!("{kind}:{}", d.path().display()).parse::<DataSpec>().unwrap().load().unwrap();
            assert_eq!((data.train.len(), data.test.len(), data.classes()), (30, 12, 10));
            assert_eq!(data.shape().to_string(), "1x28x28");
            assert_eq!(data.train.labels[13], 3);
            assert_eq!(data.train.image(1)[0], (784 % 251) as u8);
            assert_eq!(data.files.len(), 4);
        }
    }
}

#[test]
fn idx_errors_name_the_file_and_the_problem() {
    let d = tempfile::tempdir().unwrap();
    write_idx_dir(d.path(), 20, 10, false);
    let spec = format!("mnist:{}", d.path().display());
    let p = d.path().join("train-images-idx3-ubyte");
    let good = std::fs::read(&p).unwrap();
    // wrong magic
    let mut bad = good.clone();
    bad[3] = 2;
    std::fs::write(&p, &bad).unwrap();
    let e = load_err(&spec);
    assert!(e.contains("train-images-idx3-ubyte") && e.contains("magic"), "{e}");
    // truncated
    std::fs::write(&p, &good[..good.len() - 10]).unwrap();
    let e = load_err(&spec);
    assert!(e.contains("truncated") || e.contains("payload"), "{e}");
    // image and label counts differ
    std::fs::write(&p, idx_bytes(3, &[19, 28, 28], &good[16..16 + 19 * 784])).unwrap();
    let e = load_err(&spec);
    assert!(e.contains("19 images") && e.contains("20 labels"), "{e}");
    std::fs::write(&p, &good).unwrap();
    // label out of range
    let lp = d.path().join("train-labels-idx1-ubyte");
    let mut labels = std::fs::read(&lp).unwrap();
    labels[8 + 5] = 12;
    std::fs::write(&lp, &labels).unwrap();
    let e = load_err(&spec);
    assert!(e.contains("label 12") && e.contains("out of range"), "{e}");
    // empty set
    std::fs::write(&lp, idx_bytes(1, &[0], &[])).unwrap();
    std::fs::write(&p, idx_bytes(3, &[0, 28, 28], &[])).unwrap();
    assert!(load_err(&spec).contains("empty"), "{}", load_err(&spec));
    // missing file
    std::fs::remove_file(&p).unwrap();
    let e = load_err(&spec);
    assert!(e.contains("train-images-idx3-ubyte") && e.contains("none of these files exists"), "{e}");
    // not a directory, corrupt gzip
    assert!(load_err("mnist:/nonexistent/dir").contains("not a directory"));
    std::fs::write(d.path().join("train-images-idx3-ubyte.gz"), [0x1f, 0x8b, 1, 2, 3]).unwrap();
    assert!(load_err(&spec).contains("corrupt gzip"), "{}", load_err(&spec));
}

fn cifar_record(label_bytes: &[u8], seed: u8) -> Vec<u8> {
    let mut r = label_bytes.to_vec();
    r.extend((0..3072u32).map(|i| (i as u8).wrapping_mul(seed)));
    r
}

#[test]
fn cifar_binary_versions() {
    let d = tempfile::tempdir().unwrap();
    let bin = d.path().join("cifar-10-batches-bin");
    std::fs::create_dir(&bin).unwrap();
    for (i, name) in ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"].iter().enumerate()
    {
        let recs: Vec<u8> = (0..2u8).flat_map(|k| cifar_record(&[(i as u8 * 2 + k) % 10], k + 1)).collect();
        std::fs::write(bin.join(name), recs).unwrap();
    }
    std::fs::write(bin.join("test_batch.bin"), cifar_record(&[7], 3)).unwrap();
    // the parent or the folder itself
    for dir in [d.path().to_path_buf(), bin.clone()] {
        let data = format!("cifar10:{}", dir.display()).parse::<DataSpec>().unwrap().load().unwrap();
        assert_eq!((data.train.len(), data.test.len(), data.classes()), (10, 1, 10));
        assert_eq!(data.train.labels, (0..10).collect::<Vec<u16>>());
        assert_eq!(data.test.image(0)[5], 15);
        assert_eq!(data.default_augment, pada::data::Augment { crop_pad: 4, flip: true });
    }
    // a truncated batch
    std::fs::write(bin.join("test_batch.bin"), &cifar_record(&[7], 3)[..3000]).unwrap();
    let e = load_err(&format!("cifar10:{}", d.path().display()));
    assert!(e.contains("test_batch.bin") && e.contains("3073-byte"), "{e}");
    // CIFAR-100: coarse and fine label; the fine one counts
    let c100 = d.path().join("cifar-100-binary");
    std::fs::create_dir(&c100).unwrap();
    std::fs::write(c100.join("train.bin"), [cifar_record(&[1, 42], 1), cifar_record(&[2, 99], 2)].concat()).unwrap();
    std::fs::write(c100.join("test.bin"), cifar_record(&[3, 5], 1)).unwrap();
    let data = format!("cifar100:{}", d.path().display()).parse::<DataSpec>().unwrap().load().unwrap();
    assert_eq!((data.train.labels.clone(), data.classes()), (vec![42, 99], 100));
    std::fs::write(c100.join("test.bin"), cifar_record(&[3, 100], 1)).unwrap();
    assert!(load_err(&format!("cifar100:{}", d.path().display())).contains("label 100"));
}

/// A Python 2 pickle (protocol 2) of a dict holding a numpy uint8 array under
/// `data` and a list of ints under `label_key`, as the official CIFAR files are.
fn numpy_pickle(n: usize, labels: &[i64], label_key: &str, seed: u8) -> Vec<u8> {
    let s = |b: &mut Vec<u8>, text: &str| {
        b.push(b'U');
        b.push(text.len() as u8);
        b.extend_from_slice(text.as_bytes());
    };
    let mut b = vec![0x80, 2, b'}', b'('];
    s(&mut b, "data");
    b.extend_from_slice(b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85");
    s(&mut b, "b");
    b.extend_from_slice(b"\x87R(K\x01M");
    b.extend_from_slice(&(n as u16).to_le_bytes());
    b.extend_from_slice(b"M\x00\x0c\x86cnumpy\ndtype\n");
    s(&mut b, "u1");
    b.extend_from_slice(b"K\x00K\x01\x87R(K\x03");
    s(&mut b, "|");
    b.extend_from_slice(b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89T");
    b.extend_from_slice(&((n * 3072) as u32).to_le_bytes());
    b.extend((0..n * 3072).map(|i| (i as u8).wrapping_mul(seed)));
    b.extend_from_slice(b"tb");
    s(&mut b, label_key);
    b.extend_from_slice(b"](");
    for &l in labels {
        b.push(b'K');
        b.push(l as u8);
    }
    b.extend_from_slice(b"eu.");
    b
}

#[test]
fn cifar_python_pickle_versions() {
    let d = tempfile::tempdir().unwrap();
    let py = d.path().join("cifar-10-batches-py");
    std::fs::create_dir(&py).unwrap();
    for i in 1..=5 {
        std::fs::write(py.join(format!("data_batch_{i}")), numpy_pickle(2, &[i, i + 1], "labels", i as u8)).unwrap();
    }
    std::fs::write(py.join("test_batch"), numpy_pickle(3, &[9, 8, 7], "labels", 7)).unwrap();
    let data = format!("cifar10:{}", d.path().display()).parse::<DataSpec>().unwrap().load().unwrap();
    assert_eq!((data.train.len(), data.test.len()), (10, 3));
    assert_eq!(data.train.labels[..4], [1, 2, 2, 3]);
    assert_eq!(data.test.labels, vec![9, 8, 7]);
    assert_eq!(data.test.image(1)[0], ((3072usize * 7) % 256) as u8);
    // labels and data disagree
    std::fs::write(py.join("test_batch"), numpy_pickle(3, &[9, 8], "labels", 7)).unwrap();
    let e = load_err(&format!("cifar10:{}", d.path().display()));
    assert!(e.contains("test_batch") && e.contains("2 labels"), "{e}");
    // not a pickle
    std::fs::write(py.join("test_batch"), b"hello").unwrap();
    assert!(load_err(&format!("cifar10:{}", d.path().display())).contains("not a readable Python pickle"));
    // CIFAR-100 uses fine_labels
    let c100 = d.path().join("cifar-100-python");
    std::fs::create_dir(&c100).unwrap();
    std::fs::write(c100.join("train"), numpy_pickle(2, &[55, 99], "fine_labels", 1)).unwrap();
    std::fs::write(c100.join("test"), numpy_pickle(1, &[3], "fine_labels", 1)).unwrap();
    let data = format!("cifar100:{}", d.path().display()).parse::<DataSpec>().unwrap().load().unwrap();
    assert_eq!(data.train.labels, vec![55, 99]);
}

#[test]
fn embedded_subset_is_balanced_and_interleaved() {
    let data = DataSpec::Embedded.load().unwrap();
    assert_eq!((data.train.len(), data.test.len(), data.classes()), (5000, 10_000, 10));
    for split in [&data.train, &data.test] {
        let mut counts = [0usize; 10];
        split.labels.iter().for_each(|&l| counts[l as usize] += 1);
        assert!(counts.iter().all(|&c| c == split.len() / 10), "{counts:?}");
        // every window of 10 consecutive images holds all classes
        for w in split.labels.chunks(10) {
            let mut s = w.to_vec();
            s.sort();
            assert_eq!(s, (0..10).collect::<Vec<u16>>());
        }
    }
    // Fashion-MNIST statistics
    assert!((data.norm.mean[0] - 0.286).abs() < 0.02 && (data.norm.std[0] - 0.353).abs() < 0.02, "{:?}", data.norm);
}

#[test]
fn data_spec_errors() {
    for (spec, want) in [
        ("cifar10", "needs a directory"),
        ("imagenet:/x", "not a data specification"),
        ("synthetic:3x32", "CxHxW"),
        ("synthetic:1x8x8:0", "at least 1"),
    ] {
        let e = format!("{:#}", spec.parse::<DataSpec>().unwrap_err());
        assert!(e.contains(want), "{spec}: {e}");
    }
    assert_eq!("synthetic:3x32x32:10:5:4".parse::<DataSpec>().unwrap().to_string(), "synthetic:3x32x32:10:5:4");
}

#[test]
fn loader_batches_are_cnhw_normalised_and_augmented_reproducibly() {
    use pada::data::{loader::make_batch, Augment};
    use rand::SeedableRng;
    let data = "synthetic:3x8x8:20:4:2".parse::<DataSpec>().unwrap().load().unwrap();
    let b = make_batch(&data.train, &data.norm, &[3, 5], None);
    assert_eq!(b.x.len(), 2 * 3 * 64);
    // channel 1 of image 5 (second in the batch) sits at (1 * 2 + 1) * 64
    let want = (data.train.image(5)[64] as f64 / 255.0 - data.norm.mean[1]) / data.norm.std[1];
    assert_eq!(b.x[3 * 64], want, "normalised in f64 as (x / 255 - mean) / std");
    let aug = Augment { crop_pad: 2, flip: true };
    let mut r1 = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let mut r2 = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let a1 = make_batch(&data.train, &data.norm, &[3, 5], Some((aug, &mut r1)));
    let a2 = make_batch(&data.train, &data.norm, &[3, 5], Some((aug, &mut r2)));
    assert_eq!(a1.x, a2.x);
    assert_ne!(a1.x, b.x);
    // flipping twice with no crop is the identity
    let flip = Augment { crop_pad: 0, flip: true };
    assert_eq!(flip.source(8, 8, (0, 0, true), 2, 0), Some((2, 7)));
    assert_eq!(aug.source(8, 8, (0, 0, false), 0, 0), None, "top-left of a crop at offset 0 shows padding");
}

/// The image folder of tests/fixtures/data/folder (scripts/make_data_fixtures.py).
fn folder_fixture() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/data/folder")
}

/// A copy of the fixture folder to break.
fn folder_copy() -> tempfile::TempDir {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let p = e.unwrap().path();
            let dest = to.join(p.file_name().unwrap());
            if p.is_dir() {
                copy(&p, &dest)
            } else {
                std::fs::copy(&p, &dest).unwrap();
            }
        }
    }
    let d = tempfile::tempdir().unwrap();
    copy(&folder_fixture(), d.path());
    d
}

#[test]
fn image_folders_decode_png_and_jpeg_class_interleaved() {
    let spec: DataSpec = format!("folder:{}", folder_fixture().display()).parse().unwrap();
    let data = spec.load().unwrap();
    assert_eq!((data.train.len(), data.test.len(), data.classes()), (7, 4, 3));
    assert_eq!(data.shape().to_string(), "3x6x8");
    // classes in sorted order (ant, bee, cow), splits class-interleaved: the
    // first image of each class, then the second, ...
    assert_eq!(data.train.labels, vec![0, 1, 2, 0, 1, 2, 0]);
    assert_eq!(data.test.labels, vec![0, 1, 2, 1]);
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(folder_fixture().join("expected.json")).unwrap()).unwrap();
    let order = |split: &str| -> Vec<&serde_json::Value> {
        // the fixture lists each class's files in order; interleave them as the reader does
        let mut per_class: Vec<Vec<&serde_json::Value>> = vec![Vec::new(); 3];
        for e in expected.as_array().unwrap().iter().filter(|e| e["split"] == split) {
            let c = ["ant", "bee", "cow"].iter().position(|c| e["class"] == *c).unwrap();
            per_class[c].push(e);
        }
        (0..3).flat_map(|k| per_class.iter().filter_map(move |c| c.get(k).copied())).collect()
    };
    for (split, set) in [("train", &data.train), ("test", &data.test)] {
        for (i, e) in order(split).into_iter().enumerate() {
            let want: Vec<i64> = e["chw"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
            let got = set.image(i);
            let worst = got.iter().zip(&want).map(|(&g, &w)| (g as i64 - w).abs()).max().unwrap();
            // PNG is lossless; JPEG decoders may differ from PIL's by rounding in the inverse DCT
            let file = e["file"].as_str().unwrap();
            let tol = if file.ends_with(".png") { 0 } else { 3 };
            assert!(worst <= tol, "{split} image {i} ({file}): pixels differ from PIL's by up to {worst}");
        }
    }
    // not CIFAR-10: normalised by the training split's statistics, no built-in benchmark
    assert_eq!(data.norm, pada::data::Normalization::of(&data.train));
    assert_eq!(pada::arch::Space::NB201.benchmark(&spec), None);
    assert_eq!(data.files.len(), 1, "one checksum for the whole folder");
    assert_eq!(data.files[0].sha256, spec.load().unwrap().files[0].sha256, "the checksum is deterministic");
}

#[test]
fn image_folders_of_cifar10_classes_are_cifar10() {
    let d = tempfile::tempdir().unwrap();
    for split in ["train", "test"] {
        for (c, name) in pada::data::folder::CIFAR10_CLASSES.iter().enumerate() {
            let dir = d.path().join(split).join(name);
            std::fs::create_dir_all(&dir).unwrap();
            let img = image::RgbImage::from_fn(32, 32, |x, y| image::Rgb([c as u8 * 20, x as u8, y as u8]));
            img.save(dir.join("0.png")).unwrap();
        }
    }
    let spec: DataSpec = format!("folder:{}", d.path().display()).parse().unwrap();
    let data = spec.load().unwrap();
    assert_eq!(data.norm, pada::data::cifar::cifar10_normalization());
    assert_eq!(data.default_augment, pada::data::Augment { crop_pad: 4, flip: true });
    assert_eq!(pada::arch::Space::NB201.benchmark(&spec).map(|t| t.to_string()), Some("nb201:cifar10".to_string()));
    assert_eq!(pada::arch::Space::NB_MACRO.benchmark(&spec).map(|t| t.to_string()), Some("nbmacro:cifar10".to_string()));
}

#[test]
fn bad_image_folders_are_refused_naming_the_file_or_folder() {
    let err = |d: &Path| format!("{:#}", format!("folder:{}", d.display()).parse::<DataSpec>().unwrap().load().unwrap_err());
    // a file that is not an image
    let d = folder_copy();
    std::fs::write(d.path().join("train/bee/notes.txt"), b"not an image").unwrap();
    let e = err(d.path());
    assert!(e.contains("notes.txt") && e.contains("not an image"), "{e}");
    // a truncated JPEG
    let d = folder_copy();
    let f = d.path().join("train/bee/001.jpg");
    let bytes = std::fs::read(&f).unwrap();
    std::fs::write(&f, &bytes[..bytes.len() / 3]).unwrap();
    let e = err(d.path());
    assert!(e.contains("001.jpg") && e.contains("cannot decode"), "{e}");
    // an image of another size
    let d = folder_copy();
    image::RgbImage::new(5, 5).save(d.path().join("test/cow/001.png")).unwrap();
    let e = err(d.path());
    assert!(e.contains("001.png") && e.contains("3x5x5") && e.contains("3x6x8"), "{e}");
    // another channel count
    let d = folder_copy();
    image::GrayImage::new(8, 6).save(d.path().join("train/cow/009.png")).unwrap();
    let e = err(d.path());
    assert!(e.contains("009.png") && e.contains("1x6x8"), "{e}");
    // an alpha channel
    let d = folder_copy();
    image::RgbaImage::new(8, 6).save(d.path().join("train/cow/009.png")).unwrap();
    let e = err(d.path());
    assert!(e.contains("009.png") && e.contains("alpha"), "{e}");
    // an empty class folder
    let d = folder_copy();
    std::fs::create_dir(d.path().join("train/dog")).unwrap();
    std::fs::create_dir(d.path().join("test/dog")).unwrap();
    let e = err(d.path());
    assert!(e.contains("dog") && e.contains("empty"), "{e}");
    // train and test classes differ
    let d = folder_copy();
    std::fs::rename(d.path().join("test/cow"), d.path().join("test/cat")).unwrap();
    let e = err(d.path());
    assert!(e.contains("\"cow\"") && e.contains("\"cat\"") && e.contains("differ"), "{e}");
    // no test split
    let d = folder_copy();
    std::fs::remove_dir_all(d.path().join("test")).unwrap();
    let e = err(d.path());
    assert!(e.contains("test") && e.contains("missing"), "{e}");
    // a file where class folders belong
    let d = folder_copy();
    std::fs::write(d.path().join("train/readme.md"), b"x").unwrap();
    let e = err(d.path());
    assert!(e.contains("readme.md") && e.contains("one folder per class"), "{e}");
    // not a folder at all
    let e = err(&d.path().join("nowhere"));
    assert!(e.contains("nowhere") && e.contains("not a folder"), "{e}");
}

#[test]
fn imagenet16_120_keeps_the_first_120_classes() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/data/imagenet16");
    let spec: DataSpec = format!("imagenet16:{}", dir.display()).parse().unwrap();
    let data = spec.load().unwrap();
    assert_eq!((data.classes(), data.shape().to_string()), (120, "3x16x16".to_string()));
    assert_eq!(pada::arch::Space::NB201.benchmark(&spec).map(|t| t.to_string()), Some("nb201:imagenet16".to_string()));
    assert_eq!(pada::arch::Space::NB_MACRO.benchmark(&spec), None, "NAS-Bench-Macro has CIFAR-10 only");
    let expected: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    for (split, set) in [("train", &data.train), ("test", &data.test)] {
        let want = expected[split].as_array().unwrap();
        assert_eq!(set.len(), want.len(), "{split}: images of the classes 1 to 120");
        // class-interleaved: compare as multisets of (class, first bytes), and check the order's balance
        let mut got: Vec<(u16, Vec<u8>)> = (0..set.len()).map(|i| (set.labels[i], set.image(i)[..4].to_vec())).collect();
        let mut want: Vec<(u16, Vec<u8>)> = want
            .iter()
            .map(|e| {
                (
                    e["class"].as_u64().unwrap() as u16,
                    e["first_bytes"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u8).collect(),
                )
            })
            .collect();
        assert_eq!(
            set.labels[..3.min(set.len())].iter().collect::<std::collections::HashSet<_>>().len(),
            3.min(set.len()),
            "{split}: interleaved"
        );
        got.sort();
        want.sort();
        assert_eq!(got, want, "{split}");
    }
    assert!(data.train.labels.iter().all(|&l| l < 120));
    // a missing batch, and a label out of 1..1000
    let d = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(&dir).unwrap() {
        let p = f.unwrap().path();
        std::fs::copy(&p, d.path().join(p.file_name().unwrap())).unwrap();
    }
    std::fs::remove_file(d.path().join("train_data_batch_7")).unwrap();
    let e = load_err(&format!("imagenet16:{}", d.path().display()));
    assert!(e.contains("train_data_batch_7") && e.contains("missing"), "{e}");
    std::fs::copy(dir.join("train_data_batch_7"), d.path().join("train_data_batch_7")).unwrap();
    std::fs::write(d.path().join("val_data"), numpy_pickle(1, &[0], "labels", 3)).unwrap();
    let e = load_err(&format!("imagenet16:{}", d.path().display()));
    assert!(e.contains("val_data"), "{e}");
}
