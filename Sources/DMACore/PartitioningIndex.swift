extension RandomAccessCollection {
    /// The package's one binary search: the index of the first element for which `belongs` is
    /// true, in a collection partitioned so that every element for which it is false comes first
    /// (`endIndex` when there is none). Sorted ranges, regions and runs are searched with it by
    /// their last address: `ranges.partitioningIndex { $0.last >= address }` is the first one that
    /// could hold `address`.
    /// - Complexity: O(log n) calls of `belongs`.
    @inlinable
    package func partitioningIndex(where belongs: (Element) throws -> Bool) rethrows -> Index {
        var low = startIndex
        var count = self.count
        while count > 0 {
            let half = count / 2
            let middle = index(low, offsetBy: half)
            if try belongs(self[middle]) {
                count = half
            } else {
                low = index(after: middle)
                count -= half + 1
            }
        }
        return low
    }
}
