import Dispatch
import FSPFCore
import FSPFCrypto
import FSPFSystem
import Glibc

/// A one-line progress display on stderr (files, bytes, MB/s, ETA), redrawn every 200 ms.
/// Drawing happens on one serial queue; `stop` waits for it, so no redraw follows the clearing.
final class ProgressDisplay: @unchecked Sendable {
    let progress = Progress()
    private let queue = DispatchQueue(label: "fspf.progress")
    private lazy var timer = DispatchSource.makeTimerSource(queue: queue)
    private let started = DispatchTime.now()
    private var stopped = false  // on `queue`

    /// Only when stderr is a terminal and the user did not ask for quiet.
    static func startIfTerminal(quiet: Bool) -> ProgressDisplay? {
        guard !quiet, isatty(2) == 1 else { return nil }
        let d = ProgressDisplay()
        d.timer.schedule(deadline: .now() + .milliseconds(200), repeating: .milliseconds(200))
        d.timer.setEventHandler { [weak d] in if d?.stopped == false { d?.draw(final: false) } }
        d.timer.resume()
        return d
    }

    /// Clears the line; call it before printing anything else to the terminal. Idempotent.
    func stop() {
        queue.sync {
            guard !stopped else { return }
            stopped = true
            timer.cancel()
            draw(final: true)
        }
    }

    private func draw(final: Bool) {
        let total = progress.totalBytes
        let done = progress.bytesDone
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started.uptimeNanoseconds) / 1e9
        let rate = seconds > 0 ? Double(done) / seconds / 1e6 : 0
        let fraction = total > 0 ? Double(done) / Double(total) : 1
        let width = 24
        let filled = Int(fraction * Double(width))
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        let eta = rate > 0 && total > done ? Int(Double(total - done) / 1e6 / rate) : 0
        var line = "\r[\(bar)] \(progress.filesDone)/\(progress.totalFiles) files  "
            + "\(done / 1_000_000)/\(total / 1_000_000) MB  \(Int(rate)) MB/s  ETA \(eta / 60):\(String(format2: eta % 60))"
        if final { line = "\r\u{1b}[2K" }
        _ = line.withCString { write(2, $0, strlen($0)) }
    }
}

extension String {
    init(format2 n: Int) { self = n < 10 ? "0\(n)" : "\(n)" }
}
