// The reference's spellings on hcore's command line: what `prune` and `finetune` accept, rename, ignore and refuse.
import XCTest

@testable import hcore

final class ReferenceFlagsTests: XCTestCase {
    func testReferenceFlagsTranslate() throws {
        let (args, warnings) = try ReferenceFlags.translate([
            "prune", "--target_sparsity=0.7", "--initialize_from", "m", "--avg_activation_path", "a.pkl",
            "--save_steps", "512",
            "--dataloader_num_workers", "32", "--do_train", "--remove_unused_columns=false", "--seed", "43",
            "--max_grad_norm", "0",
        ])
        XCTAssertEqual(
            args,
            [
                "prune", "--target-sparsity=0.7", "--model", "m", "--activations", "a.pkl", "--checkpoint-steps", "512",
                "--seed", "43", "--max-grad-norm", "0",
            ])
        XCTAssertEqual(warnings.count, 3)
        XCTAssertThrowsError(try ReferenceFlags.translate(["prune", "--output_dir", "x"]))
        // Other commands keep their arguments as written.
        XCTAssertEqual(
            try ReferenceFlags.translate(["eval", "--output_dir", "x"]).arguments, ["eval", "--output_dir", "x"])
    }
}
